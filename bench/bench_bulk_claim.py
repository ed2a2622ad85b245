"""Bulk claim against single claims, in one run, on PostgreSQL.

    .venv/bin/python bench/bench_bulk_claim.py [--rows 10000]

Recreates the PostgreSQL database `bench_bulk_claim` (BENCH_DATABASE_URL overrides it), loads
100,000 approved serial + MAC identities with INSERT ... SELECT, and measures, in the same process:

- `--rows` single calls of claim_device() (the baseline: what the API or the wizard does per unit);
- one claim_devices() of `--rows` other units, and one of a tenth of them, counting the SQL
  statements each sends (they must not grow with the rows).

Prints the times, the ratio and whether the goals are met: the bulk claim at least 10x faster
than the single claims, and its statement count the same at both sizes (but for the one INSERT
Django splits in two at PostgreSQL's parameter limit).
"""

import argparse
import os
import time

import psycopg
from common import django_env, insert_serial_mac_identities, recreate_database, setup_django
from common import typed_serial_and_mac as typed

DATABASE_URL = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/bench_bulk_claim")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/4")
IDENTITIES = 100_000
RATIO_GOAL = 10

ENV = django_env(DATABASE_URL, REDIS_URL)


def create_tenant():
    from accounts.models import Membership, Organization, Role, User
    from spaces.models import Space
    from vendors.models import ClaimingMethod, DeviceModel, Vendor

    vendor = Vendor.objects.create(name="Bench Devices", slug="bench", support_email="support@bench.example")
    model = DeviceModel.objects.create(
        vendor=vendor, name="Bench Hub", slug="bench-hub", claiming_method=ClaimingMethod.objects.get(slug="serial-mac")
    )
    organization = Organization.objects.create(name="Bench Org")
    organization.connected_vendors.add(vendor)
    owner = User.objects.create_user("owner@bench.example", "bench-pass-2026")
    Membership.objects.create(user=owner, organization=organization, role=Role.OWNER)
    return model, organization, owner, Space.objects.create(organization=organization, name="Delivery")


def load_identities(model):
    with psycopg.connect(DATABASE_URL, autocommit=True) as conn:
        insert_serial_mac_identities(conn, model.pk, IDENTITIES)
        conn.execute("ANALYZE")


def single_claims(model, space, owner, units):
    from devices.claims import claim_device

    started = time.perf_counter()
    for unit in units:
        claim_device(space=space, device_model=model, identifiers=typed(unit), name=f"Unit {unit}", actor=owner)
    return time.perf_counter() - started


def bulk_claim(model, organization, space, owner, units):
    """(seconds, SQL statements) of one claim_devices() of `units`. The statements are counted by
    an execute wrapper, which costs nothing per row (Django's query capture would format each
    statement's 10,000 rows of parameters a second time)."""
    from django.db import connection

    from devices.bulk_claims import ClaimRow, claim_devices

    statements = []

    def count(execute, sql, params, many, context):
        statements.append(sql)
        return execute(sql, params, many, context)

    rows = [ClaimRow(n, space, model, typed(unit), f"Unit {unit}") for n, unit in enumerate(units, 1)]
    with connection.execute_wrapper(count):
        started = time.perf_counter()
        result = claim_devices(rows, organization=organization, actor=owner)
        elapsed = time.perf_counter() - started
    if len(result.devices) != len(units):
        raise SystemExit(f"the bulk claim claimed {len(result.devices)} of {len(units)}: {result.failed[:3]}")
    return elapsed, len(statements)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000, help="units per series (default 10,000)")
    args = parser.parse_args()
    rows = args.rows

    print(f"Loading {IDENTITIES:,} approved identities into {DATABASE_URL} ...")
    recreate_database(DATABASE_URL, ENV)
    setup_django(ENV)
    from django.core.cache import cache

    cache.clear()  # claim-attempt counters of an earlier run
    model, organization, owner, space = create_tenant()
    load_identities(model)

    load_before = f"{os.getloadavg()[0]:.1f}"
    single_seconds = single_claims(model, space, owner, range(1, rows + 1))
    small_seconds, small_statements = bulk_claim(
        model, organization, space, owner, range(rows + 1, rows + 1 + rows // 10)
    )
    bulk_seconds, bulk_statements = bulk_claim(model, organization, space, owner, range(2 * rows + 1, 3 * rows + 1))
    load_after = f"{os.getloadavg()[0]:.1f}"

    ratio = single_seconds / bulk_seconds
    print(f"\nIn one process on PostgreSQL; machine load average {load_before} -> {load_after}")
    print(f"{'series':<44} {'units':>7} {'seconds':>9} {'units/s':>9} {'statements':>11}")
    print(
        f"{'claim_device() one by one (baseline)':<44} {rows:>7,} {single_seconds:>9.2f} {rows / single_seconds:>9.0f}"
    )
    print(
        f"{'claim_devices(), one call':<44} {rows // 10:>7,} {small_seconds:>9.2f} "
        f"{rows // 10 / small_seconds:>9.0f} {small_statements:>11}"
    )
    print(
        f"{'claim_devices(), one call':<44} {rows:>7,} {bulk_seconds:>9.2f} "
        f"{rows / bulk_seconds:>9.0f} {bulk_statements:>11}"
    )
    print("\nGoals:")
    print(
        f"  bulk claim of {rows:,} rows >= {RATIO_GOAL}x faster than {rows:,} single claims: "
        f"{'met' if ratio >= RATIO_GOAL else 'NOT met'} ({ratio:.1f}x)"
    )
    # Django splits an INSERT at PostgreSQL's 65,535 parameters: the audit lines' (7 a row) of more
    # than 9,362 rows take a second statement, the one difference allowed.
    print(
        f"  statements of a bulk claim not per row: "
        f"{'met' if bulk_statements <= small_statements + 1 else 'NOT met'} "
        f"({small_statements} for {rows // 10:,} rows, {bulk_statements} for {rows:,})"
    )


if __name__ == "__main__":
    main()
