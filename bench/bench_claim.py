"""Claim and dashboard speed over real HTTP, on a full-size serial list.

    .venv/bin/python bench/bench_claim.py [--requests 200]

Recreates the PostgreSQL database `bench_i3` (BENCH_DATABASE_URL overrides it), loads 1,000,000
approved identities of a serial + MAC model and 100,000 claimed devices with set-based SQL
(INSERT ... SELECT), and 1,000,000 identities of a serial + claim code model with their codes'
HMACs (COPY), starts gunicorn on 127.0.0.1:11000-11099 and measures, in the same run:

- the space dashboard of a space holding 10,000 devices, against a space holding 10 (baseline);
- the claim wizard's final POST (the one that claims), into each of those spaces, of serial + MAC
  units and of claim-code units.

Prints median and p95 in milliseconds, the SQL query count of each request (reported by the
server in an X-Query-Count header, see claim_bench_query_count.py), the ratios against the
baseline, and whether the goals are met: claim p95 < 50 ms, dashboard p95 < 150 ms, query
counts that do not grow with the number of devices.
"""

import argparse
import os
import random
import statistics
import time
import uuid

import psycopg
from common import (
    Browser,
    django_env,
    free_port,
    insert_serial_mac_identities,
    p95,
    recreate_database,
    setup_django,
    start_gunicorn,
)
from common import typed_serial_and_mac as typed_identifiers

DATABASE_URL = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/bench_i3")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/3")
PORTS = range(11000, 11100)
IDENTITIES = 1_000_000
CLAIMED = 100_000
BIG_SPACE, SMALL_SPACE = 10_000, 10
OTHER_ORGANIZATIONS = 9
PASSWORD = "bench-pass-2026"  # noqa: S105 (a throw-away bench account)
CLAIM_GOAL_MS, DASHBOARD_GOAL_MS = 50, 150

ENV = django_env(DATABASE_URL, REDIS_URL)


def create_tenants():
    """The few rows made with the ORM: vendor, model, organizations, spaces and the owner who claims."""
    from accounts.models import Membership, Organization, Role, User
    from spaces.models import Space
    from vendors.models import ClaimingMethod, DeviceModel, Vendor

    vendor = Vendor.objects.create(name="Bench Devices", slug="bench", support_email="support@bench.example")
    model = DeviceModel.objects.create(
        vendor=vendor, name="Bench Hub", slug="bench-hub", claiming_method=ClaimingMethod.objects.get(slug="serial-mac")
    )
    camera = DeviceModel.objects.create(
        vendor=vendor,
        name="Bench Cam",
        slug="bench-cam",
        claiming_method=ClaimingMethod.objects.get(slug="serial-claim-code"),
    )
    organization = Organization.objects.create(name="Bench Org")
    organization.connected_vendors.add(vendor)
    owner = User.objects.create_user("owner@bench.example", PASSWORD)
    Membership.objects.create(user=owner, organization=organization, role=Role.OWNER)
    small = Space.objects.create(organization=organization, name="Small")
    big = Space.objects.create(organization=organization, name="Big")
    others = []
    for n in range(OTHER_ORGANIZATIONS):
        other = Organization.objects.create(name=f"Other Org {n}")
        other.connected_vendors.add(vendor)
        others.append(Space.objects.create(organization=other, name="Site"))
    return model, camera, small, big, others


def bench_claim_code(unit):
    """The claim code of claim-code unit number `unit`: well-formed, and different for each unit."""
    from vendors.claim_codes import verhoeff_check_digit

    digits = f"{unit * 7_919 % 10**10:010d}"
    return digits + verhoeff_check_digit(digits)


def load_camera_rows(camera):
    """1,000,000 identities of the claim-code model, with the HMAC of each one's code (COPY); none
    claimed. Loaded before load_rows(), which settles the whole load."""
    from vendors.claim_codes import claim_code_hasher

    hash_code = claim_code_hasher()
    with psycopg.connect(DATABASE_URL, autocommit=True) as conn:
        columns = "code, identifier_1, status, claim_code_hash, created_at, device_model_id"
        with conn.cursor().copy(f"COPY vendors_approvedidentity ({columns}) FROM STDIN") as copy:
            for unit in range(1, IDENTITIES + 1):
                copy.write_row(
                    (uuid.uuid4(), f"BC-{unit:08d}", "approved", hash_code(bench_claim_code(unit)), "now", camera.pk)
                )


def load_rows(model, small, big, others):
    """1,000,000 identities and 100,000 claimed devices, set-based: INSERT ... SELECT in PostgreSQL."""
    spaces = [small, big, *others]
    with psycopg.connect(DATABASE_URL, autocommit=True) as conn:
        insert_serial_mac_identities(conn, model.pk, IDENTITIES)
        # Devices 1-10 go to the small space, the next 10,000 to the big one, the rest to the other
        # organizations; a third online, a third offline, a third never connected.
        conn.execute(
            """
            INSERT INTO devices_device (code, status, name, claimed_at, activated_at, last_seen_at, key_hash,
                                        created_at, device_model_id, identity_id, organization_id, space_id)
            SELECT gen_random_uuid(), 'claimed', 'Device ' || lpad(rn::text, 6, '0'), now(),
                   CASE WHEN rn %% 3 = 0 THEN NULL ELSE now() - interval '1 day' END,
                   CASE rn %% 3 WHEN 1 THEN now() WHEN 2 THEN now() - interval '1 hour' END,
                   '', now(), %(model)s, id, (%(organizations)s::bigint[])[slot], (%(spaces)s::bigint[])[slot]
            FROM (
                SELECT id, rn, CASE WHEN rn <= %(small)s THEN 1 WHEN rn <= %(small)s + %(big)s THEN 2
                                    ELSE 3 + rn %% %(others)s END AS slot
                FROM (SELECT id, row_number() OVER (ORDER BY id) AS rn
                      FROM vendors_approvedidentity WHERE device_model_id = %(model)s
                      ORDER BY id LIMIT %(claimed)s) AS first_units
            ) AS placed
            """,
            {
                "model": model.pk,
                "organizations": [space.organization_id for space in spaces],
                "spaces": [space.pk for space in spaces],
                "small": SMALL_SPACE,
                "big": BIG_SPACE,
                "others": len(others),
                "claimed": CLAIMED,
            },
        )
        # Settle the load before measuring: vacuumed and analyzed tables (no autovacuum mid-run) and
        # a checkpoint, so that flushing the load's WAL does not slow the claims' commits.
        conn.execute("VACUUM ANALYZE")
        conn.execute("CHECKPOINT")
        return conn.execute("SELECT count(*) FROM devices_device WHERE space_id = %s", [big.pk]).fetchone()[0]


def measure_dashboard(browser, space, requests):
    timings, queries = [], set()
    for n in range(requests + 10):
        status, headers, body, elapsed = browser.request("GET", f"/spaces/{space.code}/")
        if status != 200 or b"Device 0" not in body:
            raise SystemExit(f"dashboard answered HTTP {status}")
        if n >= 10:  # the first ten warm the server up
            timings.append(elapsed)
            queries.add(int(headers["X-Query-Count"]))
    return timings, queries


def typed_serial_and_mac(unit):
    return {f"identifiers-{key}": value for key, value in typed_identifiers(unit).items()}


def typed_serial_and_code(unit):
    code = bench_claim_code(unit)
    return {
        "identifiers-serial_number": f"bc-{unit:08d}",
        "identifiers-claim_code": f"{code[:4]} {code[4:7]} {code[7:]}",
    }


def measure_claims(browser, space, model, unit_numbers, typed=typed_serial_and_mac):
    """Walk the wizard to its last step for each unit (not timed), then time the POST that claims."""
    url = f"/spaces/{space.code}/claim/"
    step = f"claim_{space.code.hex}-current_step"
    timings, queries = [], set()
    for n, unit in enumerate(unit_numbers):
        browser.request("GET", url)
        browser.request("POST", url, {step: "model", "model-device_model": model.pk})
        browser.request("POST", url, {step: "identifiers", **typed(unit)})
        status, headers, _, elapsed = browser.request("POST", url, {step: "name", "name-name": f"Bench unit {unit}"})
        if status != 302:
            raise SystemExit(f"claim of unit {unit} answered HTTP {status} instead of a redirect")
        if n >= 5:  # the first five warm the server up
            timings.append(elapsed)
            queries.add(int(headers["X-Query-Count"]))
    return timings, queries


def row(label, timings, queries):
    count = "-".join(str(q) for q in sorted(queries)) if len(queries) > 1 else str(next(iter(queries)))
    print(f"{label:<52} {len(timings):>5} {statistics.median(timings):>10.1f} {p95(timings):>8.1f} {count:>8}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200, help="timed requests per series (default 200)")
    args = parser.parse_args()

    print(
        f"Loading 2 x {IDENTITIES:,} approved identities (serial + MAC, serial + claim code) and {CLAIMED:,} "
        f"claimed devices into {DATABASE_URL} ..."
    )
    started = time.perf_counter()
    recreate_database(DATABASE_URL, ENV)
    setup_django(ENV)
    model, camera, small, big, others = create_tenants()
    load_camera_rows(camera)
    in_big = load_rows(model, small, big, others)
    print(f"Loaded in {time.perf_counter() - started:.1f} s; the big space holds {in_big:,} devices.")

    # Other processes on the machine slow every figure: the load average is printed to judge them by.
    load_before = f"{os.getloadavg()[0]:.1f}"
    port = free_port(PORTS)
    # claim_bench_settings adds the middleware that reports each request's query count.
    server = start_gunicorn(
        port, ENV | {"DJANGO_SETTINGS_MODULE": "claim_bench_settings"}, workers=2, extra=["--pythonpath=bench"]
    )
    try:
        browser = Browser(port)
        browser.sign_in("owner@bench.example", PASSWORD)
        dashboard_small = measure_dashboard(browser, small, args.requests)
        dashboard_big = measure_dashboard(browser, big, args.requests)
        units = random.Random(3).sample(range(CLAIMED + 1, IDENTITIES + 1), 2 * (args.requests + 5))
        claim_small = measure_claims(browser, small, model, units[: args.requests + 5])
        claim_big = measure_claims(browser, big, model, units[args.requests + 5 :])
        cameras = random.Random(4).sample(range(1, IDENTITIES + 1), 2 * (args.requests + 5))
        code_small = measure_claims(browser, small, camera, cameras[: args.requests + 5], typed_serial_and_code)
        code_big = measure_claims(browser, big, camera, cameras[args.requests + 5 :], typed_serial_and_code)
    finally:
        server.terminate()
        server.wait(timeout=10)
    load_after = f"{os.getloadavg()[0]:.1f}"

    print(
        f"\nOver HTTP, gunicorn with 2 workers on 127.0.0.1:{port}; machine load average {load_before} -> {load_after}"
    )
    print(f"{'request':<52} {'n':>5} {'median ms':>10} {'p95 ms':>8} {'queries':>8}")
    row(f"dashboard, space of {SMALL_SPACE} devices (baseline)", *dashboard_small)
    row(f"dashboard, space of {in_big:,} devices", *dashboard_big)
    row(f"claim POST into the {SMALL_SPACE}-device space (baseline)", *claim_small)
    row(f"claim POST into the {in_big:,}-device space", *claim_big)
    row(f"claim-code claim POST into the {SMALL_SPACE}-device space", *code_small)
    row(f"claim-code claim POST into the {in_big:,}-device space", *code_big)

    print("\nAgainst the baseline (same run):")
    print(
        f"  dashboard p95 {p95(dashboard_big[0]) / p95(dashboard_small[0]):.2f}x, claim p95 "
        f"{p95(claim_big[0]) / p95(claim_small[0]):.2f}x, claim-code claim p95 "
        f"{p95(code_big[0]) / p95(claim_small[0]):.2f}x"
    )
    claim_p95 = max(p95(claim_small[0]), p95(claim_big[0]))
    code_p95 = max(p95(code_small[0]), p95(code_big[0]))
    dashboard_p95 = p95(dashboard_big[0])
    flat = dashboard_small[1] == dashboard_big[1] and claim_small[1] == claim_big[1] and code_small[1] == code_big[1]
    print("\nGoals:")
    print(f"  claim p95 < {CLAIM_GOAL_MS} ms: {'MET' if claim_p95 < CLAIM_GOAL_MS else 'NOT MET'} ({claim_p95:.1f} ms)")
    print(
        f"  claim-code claim p95 < {CLAIM_GOAL_MS} ms: {'MET' if code_p95 < CLAIM_GOAL_MS else 'NOT MET'} "
        f"({code_p95:.1f} ms)"
    )
    print(
        f"  dashboard p95 < {DASHBOARD_GOAL_MS} ms: {'MET' if dashboard_p95 < DASHBOARD_GOAL_MS else 'NOT MET'} "
        f"({dashboard_p95:.1f} ms)"
    )
    print(
        f"  query counts independent of device count: {'MET' if flat else 'NOT MET'} "
        f"(dashboard {sorted(dashboard_small[1])} vs {sorted(dashboard_big[1])}, "
        f"claim {sorted(claim_small[1])} vs {sorted(claim_big[1])}, "
        f"claim-code claim {sorted(code_small[1])} vs {sorted(code_big[1])})"
    )


if __name__ == "__main__":
    main()
