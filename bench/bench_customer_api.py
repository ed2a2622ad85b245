"""The customer API's `GET devices` at fleet size: a page of 100 of an organization of 10,000
devices, against the same pages of a 100-device organization (the baseline), in the same run.

    .venv/bin/python bench/bench_customer_api.py [--devices 10000] [--repeat 50]

Uses (and recreates) the PostgreSQL database `bench_customer_api` on 127.0.0.1:5432
(BENCH_DATABASE_URL overrides it) and Redis db 3. Prints each page's p95 (goal: < 50 ms at the large
size) with its ratio to the baseline and its SQL queries at both sizes (goal: the same), the first
page against a page deep in the list (keyset: the same cost), and the plan of a deep page.
"""

import argparse
import os
import sys
import time

from bench_search import WORDS
from common import ROOT, load_average, p95, recreate_database, setup_django

DATABASE_URL = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/bench_customer_api")
ENV = os.environ | {
    "DATABASE_URL": DATABASE_URL,
    "DJANGO_SETTINGS_MODULE": "config.settings.test",
    "REDIS_URL": "redis://127.0.0.1:6379/3",
    "TEST_CACHE_PREFIX": "bench_customer_api",
    # The bench measures the list, not the per-token rate.
    "ORG_API_RATE_PER_TOKEN": "1000000",
}
GOAL_MS = 50
PAGE = 100
SPACES = 10


def fleet(name, model, *, first, devices):
    """An organization with SPACES spaces sharing `devices` claimed devices of units first.. of
    `model` (set-based SQL), a third never connected; returns an admin's API token."""
    from django.db import connection

    from accounts.models import Role
    from tests.factories import OrganizationFactory, SpaceFactory, api_token

    organization = OrganizationFactory(name=name, vendors=[model.vendor])
    rooms = [SpaceFactory(organization=organization, name=f"{name} {n}").pk for n in range(SPACES)]
    with connection.cursor() as cursor:
        cursor.execute(
            """
            WITH units AS (
                INSERT INTO vendors_approvedidentity (device_model_id, identifier_1, status, created_at)
                SELECT %s, 'SN-' || lpad(i::text, 8, '0'), 'approved', now()
                FROM generate_series(%s::int, %s::int) AS i
                RETURNING id, device_model_id
            )
            INSERT INTO devices_device (code, identity_id, device_model_id, status, name, key_hash, online,
                                        created_at, organization_id, space_id, claimed_at, activated_at, last_seen_at)
            SELECT gen_random_uuid(), id, device_model_id, 'claimed', (%s::text[])[1 + n %% %s] || ' ' || n, '',
                   false, now(), %s, (%s::bigint[])[1 + n %% %s], now(),
                   CASE WHEN n %% 3 = 0 THEN NULL ELSE now() END,
                   CASE WHEN n %% 3 = 0 THEN NULL ELSE now() - (n %% 600) * interval '1 second' END
            FROM (SELECT id, device_model_id, row_number() OVER (ORDER BY id) AS n FROM units) AS numbered
            """,
            [model.pk, first, first + devices - 1, WORDS, len(WORDS), organization.pk, rooms, SPACES],
        )
        cursor.execute("ANALYZE vendors_approvedidentity")
        cursor.execute("ANALYZE devices_device")
    return api_token(organization, Role.ADMIN, name="Bench")[1]


def cursor_at(client, token, query, pages):
    """The cursor of page `pages` + 1 of the list asked with `query` (empty: the first page)."""
    cursor = ""
    for _ in range(pages):
        body = client.get("/api/v1/org/devices", {**query, "cursor": cursor}, HTTP_AUTHORIZATION=f"Bearer {token}")
        cursor = body.json()["next_cursor"]
    return cursor


def time_page(client, token, query, repeat):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"}
    response = client.get("/api/v1/org/devices", query, **headers)  # warm caches and connections
    assert response.status_code == 200, response.content
    assert response.json()["devices"], query
    timings, cpu = [], []
    for _ in range(repeat):
        started, started_cpu = time.perf_counter(), time.process_time()
        client.get("/api/v1/org/devices", query, **headers)
        timings.append(time.perf_counter() - started)
        cpu.append(time.process_time() - started_cpu)
    with CaptureQueriesContext(connection) as queries:
        client.get("/api/v1/org/devices", query, **headers)
    return p95(timings), len(queries), p95(cpu)


def deep_plan(token, query, cursor):
    """EXPLAIN ANALYZE of the query that finds the page after `cursor` (the page's keys)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from apitokens.tokens import authenticate_token
    from devices.representation import api_devices
    from devices.search import ApiDeviceSearchForm
    from portal.keyset import page_after

    organization = authenticate_token(token).organization
    form = ApiDeviceSearchForm(query, organization=organization)
    assert form.is_valid(), form.errors
    devices = form.search(api_devices().filter(organization=organization, status="claimed"))
    with CaptureQueriesContext(connection) as queries:
        page_after(devices, cursor, PAGE)
    (keys, *_) = [q["sql"] for q in queries.captured_queries if "devices_device" in q["sql"]]
    with connection.cursor() as sql:
        sql.execute(f"EXPLAIN ANALYZE {keys}")  # noqa: S608 - the ORM's own statement
        return "\n".join(row[0] for row in sql.fetchall())


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=50)
    args = parser.parse_args()

    recreate_database(DATABASE_URL, ENV)
    setup_django(ENV)
    sys.path.insert(0, str(ROOT))
    from django.core.cache import cache
    from django.test import Client

    from tests.factories import DeviceModelFactory

    cache.clear()
    model = DeviceModelFactory(name="Bench Hub")
    started = time.perf_counter()
    tokens = {
        "baseline": fleet("Small", model, first=1, devices=PAGE),
        "large": fleet("Large", model, first=PAGE + 1, devices=args.devices),
    }
    print(
        f"baseline: {PAGE} devices; large: {args.devices:,} devices in {SPACES} spaces "
        f"(inserted in {time.perf_counter() - started:.1f} s); a page of {PAGE}"
    )
    client = Client()
    lists = [
        ("by name", {"limit": PAGE}),
        ("last seen desc", {"limit": PAGE, "sort": "-last_seen"}),
        ("never connected", {"limit": PAGE, "connection": "never", "sort": "model"}),
        ("name words", {"limit": PAGE, "q": "lobby"}),
    ]
    # The Python process's own CPU time per request beside the wall time: on a machine shared with
    # other work, the wall time also counts the waits for a core.
    print(f"load average: {load_average()}")
    print(
        f"{'page':<18} {'baseline p95 ms':>16} {'large p95 ms':>13} {'ratio':>7} {'large cpu p95 ms':>17}"
        f" {'queries':>9}  goal < {GOAL_MS} ms"
    )
    met = True
    for label, query in lists:
        base, base_queries, _ = time_page(client, tokens["baseline"], query, args.repeat)
        big, big_queries, big_cpu = time_page(client, tokens["large"], query, args.repeat)
        ok = big * 1000 < GOAL_MS and big_queries == base_queries
        met &= ok
        print(
            f"{label:<18} {base * 1000:>16.1f} {big * 1000:>13.1f} {big / base:>6.2f}x {big_cpu * 1000:>17.1f}"
            f" {big_queries:>4} / {base_queries:<3} {'met' if ok else 'NOT met'}"
        )
    # Deep in the list: the cursor of page 60 of 100 costs what the first page does.
    first_query = {"limit": PAGE, "sort": "-last_seen"}
    deep_cursor = cursor_at(client, tokens["large"], first_query, 60)
    first, first_queries, _ = time_page(client, tokens["large"], first_query, args.repeat)
    deep, deep_queries, _ = time_page(client, tokens["large"], {**first_query, "cursor": deep_cursor}, args.repeat)
    ok = deep * 1000 < GOAL_MS and deep_queries == first_queries and deep < 2 * first
    met &= ok
    print(
        f"\npage 61 against page 1 (last seen desc, large): {deep * 1000:.1f} ms against {first * 1000:.1f} ms "
        f"({deep / first:.2f}x), {deep_queries} / {first_queries} queries: {'met' if ok else 'NOT met'}"
    )
    print(f"\n-- the devices query of page 61\n{deep_plan(tokens['large'], {'sort': '-last_seen'}, deep_cursor)}")
    print(
        f"\ngoal (p95 < {GOAL_MS} ms for a page of {PAGE} of {args.devices:,} devices, same query count): "
        f"{'met' if met else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
