"""Space dashboard search at fleet size: the same searches in a 1,000-device space of an
organization of 10,000 devices (the baseline) and in a 10,000-device space of an organization of 100,000 devices
whose model has 1,000,000 approved units, measured in the same run.

    .venv/bin/python bench/bench_search.py [--identities 1000000] [--devices 100000] [--repeat 20]

Uses (and recreates) the PostgreSQL database `bench_search` on 127.0.0.1:5432 (BENCH_DATABASE_URL
overrides it) and Redis db 4. Prints each search's p95 (goal: < 100 ms at the large size) and
ratio to the baseline, the SQL queries per page at both sizes (goal: the same), and the plans
of an identifier search and a name search (goal: no Seq Scan on the identity or device table).
"""

import argparse
import os
import sys
import time

from common import ROOT, p95, recreate_database, setup_django

DATABASE_URL = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/bench_search")
ENV = os.environ | {
    "DATABASE_URL": DATABASE_URL,
    "DJANGO_SETTINGS_MODULE": "config.settings.test",
    "REDIS_URL": "redis://127.0.0.1:6379/4",
    "TEST_CACHE_PREFIX": "bench_search",
}
SPACES = 10
GOAL_MS = 100
ORGANIZATION_GOAL_MS = 150
WORDS = ["Lobby", "Shelf", "Roof", "Stockroom", "Reception", "Garage", "Kitchen"]


def serial(i):
    return f"SN-{i:08d}"


def fleet(name, model, *, first, identities, devices, spaces):
    """An organization with `spaces` spaces sharing `devices` devices (the first space holds one in
    `spaces`), of units first..first+identities-1 of `model` (set-based SQL)."""
    from django.db import connection

    from accounts.models import Membership, Role
    from tests.factories import OrganizationFactory, SpaceFactory, UserFactory

    organization = OrganizationFactory(name=name, vendors=[model.vendor])
    rooms = [SpaceFactory(organization=organization, name=f"{name} {n}") for n in range(spaces)]
    owner = UserFactory(email=f"{name.lower()}@bench.test")
    Membership.objects.create(user=owner, organization=organization, role=Role.OWNER)
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO vendors_approvedidentity (device_model_id, identifier_1, identifier_2, status, created_at)
            SELECT %s, 'SN-' || lpad(i::text, 8, '0'),
                   upper(regexp_replace('0200' || lpad(to_hex(i), 8, '0'), '(..)(?!$)', '\\1:', 'g')),
                   'approved', now()
            FROM generate_series(%s::int, %s::int) AS i
            """,
            [model.pk, first, first + identities - 1],
        )
        cursor.execute(
            """
            INSERT INTO devices_device (code, identity_id, device_model_id, status, name, key_hash, online,
                                        created_at, organization_id, space_id, claimed_at, activated_at, last_seen_at)
            SELECT gen_random_uuid(), a.id, a.device_model_id, 'claimed',
                   (%s::text[])[1 + n %% %s] || ' ' || n, '', false, now(), %s,
                   (%s::bigint[])[1 + n %% %s], now(),
                   CASE WHEN n %% 3 = 0 THEN NULL ELSE now() END,
                   CASE WHEN n %% 3 = 0 THEN NULL ELSE now() - (n %% 600) * interval '1 second' END
            FROM (SELECT id, device_model_id, row_number() OVER (ORDER BY id) AS n
                  FROM vendors_approvedidentity WHERE device_model_id = %s AND id >= (
                      SELECT id FROM vendors_approvedidentity WHERE device_model_id = %s AND identifier_1 = %s)
                  ORDER BY id LIMIT %s) AS a
            """,
            [
                WORDS,
                len(WORDS),
                organization.pk,
                [r.pk for r in rooms],
                spaces,
                model.pk,
                model.pk,
                serial(first),
                devices,
            ],
        )
        cursor.execute("ANALYZE vendors_approvedidentity")
        cursor.execute("ANALYZE devices_device")
    return owner, rooms[0]


def searches(space):
    """A device of `space` by serial (lower case), MAC (Cisco-dot), name words, and offline by name."""
    device = space.devices.select_related("identity").order_by("pk")[37]
    cisco = device.identity.identifier_2.replace(":", "").lower()
    cisco = ".".join(cisco[n : n + 4] for n in range(0, 12, 4))
    word, number = device.name.split()
    return [
        ("serial", {"q": device.identity.identifier_1.lower()}),
        ("mac", {"q": cisco}),
        ("name words", {"q": f"{number} {word.lower()}"}),
        ("offline", {"q": word, "connection": "offline", "sort": "-last_seen"}),
    ]


def time_page(client, url, query, repeat):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    response = client.get(url, query)  # warm caches and connections
    assert response.status_code == 200, response.status_code
    assert b"No devices match" not in response.content, query
    timings = []
    for _ in range(repeat):
        started = time.perf_counter()
        client.get(url, query)
        timings.append(time.perf_counter() - started)
    with CaptureQueriesContext(connection) as queries:
        client.get(url, query)
    return p95(timings), len(queries)


def plans(space, query):
    from devices.search import DeviceSearchForm
    from vendors.models import ApprovedIdentity

    form = DeviceSearchForm(query, organization=space.organization)
    form.is_valid()
    model_ids = list(form.fields["model"].queryset.values_list("pk", flat=True))
    identity_plan = (
        ApprovedIdentity.objects.matching(query["q"], device_model_ids=model_ids)
        .order_by()
        .values_list("pk", flat=True)
        .explain()
    )
    device_plan = form.search(space.devices.with_related())[:50].explain()
    return identity_plan, device_plan


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--identities", type=int, default=1_000_000)
    parser.add_argument("--devices", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()

    recreate_database(DATABASE_URL, ENV)
    setup_django(ENV)
    sys.path.insert(0, str(ROOT))
    from django.test import Client
    from django.urls import reverse

    from tests.factories import DeviceModelFactory

    model = DeviceModelFactory(name="Bench Hub")
    started = time.perf_counter()
    sizes = {
        "baseline": fleet("Small", model, first=1, identities=10_000, devices=10_000, spaces=SPACES),
        "large": fleet("Large", model, first=10_001, identities=args.identities, devices=args.devices, spaces=SPACES),
    }
    print(
        "baseline: 10,000 devices, 1,000 in the space searched; "
        f"large: {args.identities:,} approved units, {args.devices:,} devices, "
        f"{args.devices // SPACES:,} in the space searched (inserted in {time.perf_counter() - started:.1f} s)"
    )

    client = Client()
    results = {}
    for label, (owner, space) in sizes.items():
        client.force_login(owner)
        url = reverse("space-dashboard", args=[space.code])
        for search, query in searches(space):
            results[(label, search)] = time_page(client, url, query, args.repeat)

    print(
        f"{'search':<12} {'baseline p95 ms':>16} {'large p95 ms':>13} {'ratio':>7} {'queries':>9}  goal < {GOAL_MS} ms"
    )
    met = True
    for search, _ in searches(sizes["baseline"][1]):
        base, base_queries = results[("baseline", search)]
        big, big_queries = results[("large", search)]
        ok = big * 1000 < GOAL_MS and big_queries == base_queries
        met &= ok
        print(
            f"{search:<12} {base * 1000:>16.1f} {big * 1000:>13.1f} {big / base:>6.2f}x"
            f" {big_queries:>4} / {base_queries:<3} {'met' if ok else 'NOT met'}"
        )

    # The organization-wide Devices page, filtered by connection, across every space.
    header = f"{'baseline p95 ms':>16} {'large p95 ms':>13} {'ratio':>7} {'queries':>9}"
    print(f"\n{'organization list':<22} {header}  goal < {ORGANIZATION_GOAL_MS} ms")
    for connection_filter in ("offline", "online"):
        timed = {}
        for label, (owner, space) in sizes.items():
            client.force_login(owner)
            url = reverse("organization-devices", args=[space.organization.code])
            timed[label] = time_page(client, url, {"connection": connection_filter}, args.repeat)
        (base, base_queries), (big, big_queries) = timed["baseline"], timed["large"]
        ok = big * 1000 < ORGANIZATION_GOAL_MS and big_queries == base_queries
        met &= ok
        print(
            f"{'connection=' + connection_filter:<22} {base * 1000:>16.1f} {big * 1000:>13.1f} {big / base:>6.2f}x"
            f" {big_queries:>4} / {base_queries:<3} {'met' if ok else 'NOT met'}"
        )

    large_space = sizes["large"][1]
    for search, query in searches(large_space)[1:3]:
        identity_plan, device_plan = plans(large_space, query)
        print(f"\n-- {search} {query}: identity lookup\n{identity_plan}\n-- devices\n{device_plan}")
        met &= "Seq Scan on vendors_approvedidentity" not in identity_plan
        met &= "Seq Scan on devices_device" not in device_plan
    print(
        f"\ngoal (dashboard p95 < {GOAL_MS} ms, organization list p95 < {ORGANIZATION_GOAL_MS} ms, same query count, "
        f"no sequential scan): {'met' if met else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
