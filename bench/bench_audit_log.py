"""Audit log page speed as the log grows: the same pages at a 10,000-entry log (the baseline) and
at a large one, measured in the same run.

    .venv/bin/python bench/bench_audit_log.py [--rows 1000000] [--repeat 7]

Uses (and recreates) the PostgreSQL database `bench_i7` on 127.0.0.1:5432 (BENCH_DATABASE_URL
overrides it) and Redis db 7. Prints the median time of each page (first page unfiltered,
filtered by action, by actor, by date) at both sizes and their ratio (goal: at most 2x: a page
must not grow with the log), the number of SQL queries per page, and the CSV export's rate.
"""

import argparse
import os
import statistics
import time

from common import recreate_database, setup_django

DATABASE_URL = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/bench_i7")
ENV = os.environ | {
    "DATABASE_URL": DATABASE_URL,
    "DJANGO_SETTINGS_MODULE": "config.settings.test",
    "REDIS_URL": "redis://127.0.0.1:6379/7",
    "TEST_CACHE_PREFIX": "bench_i7",
}
BASELINE_ROWS = 10_000
RATIO_GOAL = 2.0
ACTORS = 5


def organization_with_log(name, rows):
    """An organization, its owner and ACTORS members, and `rows` audit entries a second apart (set-based SQL)."""
    from django.db import connection

    from accounts.models import AuditEntry, Membership, Organization, Role, User

    organization = Organization.objects.create(name=name)
    users = [User.objects.create_user(f"{name.lower()}-{n}@bench.test", "bench-pass-phrase") for n in range(ACTORS)]
    for n, user in enumerate(users):
        Membership.objects.create(user=user, organization=organization, role=Role.OWNER if n == 0 else Role.ADMIN)
    actions = list(AuditEntry.Action.values)
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO accounts_auditentry
                (organization_id, actor_id, actor_email, action, target, details, created_at)
            SELECT %s, (%s::bigint[])[1 + i %% %s], (%s::text[])[1 + i %% %s], (%s::text[])[1 + i %% %s],
                   'Device ' || i, jsonb_build_object('space', 'Space ' || (i %% 40)),
                   now() - i * interval '1 second'
            FROM generate_series(1, %s) AS i
            """,
            [
                organization.pk,
                [u.pk for u in users],
                ACTORS,
                [u.email for u in users],
                ACTORS,
                actions,
                len(actions),
                rows,
            ],
        )
        cursor.execute("ANALYZE accounts_auditentry")
    return organization, users


def time_page(client, url, query, repeat):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client.get(url, query)  # warm caches and connections
    timings = []
    for _ in range(repeat):
        started = time.perf_counter()
        response = client.get(url, query)
        timings.append(time.perf_counter() - started)
        assert response.status_code == 200, response.status_code
    with CaptureQueriesContext(connection) as queries:
        client.get(url, query)
    return statistics.median(timings), len(queries)


def pages(organization, users):
    from django.urls import reverse
    from django.utils import timezone

    url = reverse("audit-log", args=[organization.code])
    yesterday = (timezone.now() - timezone.timedelta(days=1)).date().isoformat()
    return [
        ("first page", url, {}),
        ("by action", url, {"action": "device_moved"}),
        ("by actor", url, {"actor": users[2].email}),
        ("by date", url, {"since": yesterday, "until": yesterday}),
    ]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()

    recreate_database(DATABASE_URL, ENV)
    setup_django(ENV)
    from django.test import Client
    from django.urls import reverse

    started = time.perf_counter()
    small = organization_with_log("Baseline", BASELINE_ROWS)
    large = organization_with_log("Large", args.rows)
    print(
        f"log sizes: baseline {BASELINE_ROWS:,} entries, large {args.rows:,} entries "
        f"(inserted in {time.perf_counter() - started:.1f} s)"
    )

    client = Client()
    results = {}
    for label, (organization, users) in (("baseline", small), ("large", large)):
        client.force_login(users[0])
        for page, url, query in pages(organization, users):
            results[(label, page)] = time_page(client, url, query, args.repeat)

    print(f"{'page':<12} {'baseline ms':>12} {'large ms':>10} {'ratio':>7} {'queries':>8}  goal <= {RATIO_GOAL:.0f}x")
    met = True
    for page, _, _ in pages(*small):
        base, base_queries = results[("baseline", page)]
        big, big_queries = results[("large", page)]
        ratio = big / base
        met &= ratio <= RATIO_GOAL
        print(
            f"{page:<12} {base * 1000:>12.1f} {big * 1000:>10.1f} {ratio:>6.2f}x {big_queries:>4} / {base_queries:<3}"
            f" {'met' if ratio <= RATIO_GOAL else 'NOT met'}"
        )

    organization, users = large
    client.force_login(users[0])
    started = time.perf_counter()
    response = client.get(reverse("audit-log-csv", args=[organization.code]), {"actor": users[1].email})
    body = b"".join(response.streaming_content)
    elapsed = time.perf_counter() - started
    exported = body.count(b"\n") - 1
    print(f"CSV export (one actor): {exported:,} rows in {elapsed:.2f} s = {exported / elapsed:,.0f} rows/s")
    print(f"page goal (each page at most {RATIO_GOAL:.0f}x the baseline): {'met' if met else 'NOT met'}")


if __name__ == "__main__":
    main()
