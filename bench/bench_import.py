"""Serial-list import speed: the real CLI path against a raw psycopg COPY, measured in the same run.

    .venv/bin/python bench/bench_import.py [--rows 1000000] [--bulk-rows 100000]

Uses (and recreates) the PostgreSQL database `bench_i4` on 127.0.0.1:5432 (BENCH_DATABASE_URL
overrides it). Prints rows/s for each path, the CLI's rate as a share of the raw COPY rate
(goal >= 50%), the CLI process's peak memory (goal < 500 MB) and, for comparison, the rate of
ORM bulk_create on fewer rows. Then the same for a model whose claiming method requires claim
codes, from a file without them: the CLI generates, hashes and stores a code per unit and writes
the encrypted file of codes to download, against a raw COPY of the same serial numbers.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

import psycopg

ROOT = Path(__file__).resolve().parent.parent
DATABASE_URL = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/bench_i4")
ENV = os.environ | {
    "DATABASE_URL": DATABASE_URL,
    "DJANGO_SETTINGS_MODULE": "config.settings.local",
    "DJANGO_DEBUG": "False",
    "REDIS_URL": "",
}
RATIO_GOAL = 0.5
MEMORY_GOAL_MB = 500


def mac(n):
    return ":".join(f"{b:02X}" for b in (0x02, 0x10, (n >> 24) & 255, (n >> 16) & 255, (n >> 8) & 255, n & 255))


def write_csv(path, rows, start=0):
    """A serial list as factories ship it; every tenth MAC in lower case with dashes, to be normalized."""
    with open(path, "w") as out:
        out.write("serial_number,mac_address\n")
        for n in range(start, start + rows):
            address = mac(n).lower().replace(":", "-") if n % 10 == 0 else mac(n)
            out.write(f"BN-{n:08d},{address}\n")


def recreate_database():
    parts = urlsplit(DATABASE_URL)
    name = parts.path.lstrip("/")
    admin_url = parts._replace(path="/postgres").geturl()
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    manage("migrate", "-v0")


def manage(*args):
    return subprocess.run([sys.executable, str(ROOT / "manage.py"), *args], env=ENV, cwd=ROOT, check=True)


def setup_django():
    os.environ.update(ENV)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def write_serials_csv(path, rows, *, with_hashes=False):
    """A serial list of a claim-code model without its codes: the portal generates them. With
    `with_hashes`, each row also has a code's stored hash: what the CLI ends up writing."""
    from vendors.claim_codes import claim_code_generator, claim_code_hasher

    generate, hash_code = claim_code_generator(), claim_code_hasher()
    with open(path, "w") as out:
        out.write("serial_number,claim_code_hash\n" if with_hashes else "serial_number\n")
        for n in range(rows):
            out.write(f"BC-{n:08d},{hash_code(generate())}\n" if with_hashes else f"BC-{n:08d}\n")


def bench_models():
    """A vendor with two serial + MAC models (one for the CLI import, one for bulk_create) and a
    serial + claim code model."""
    from vendors.models import ClaimingMethod, DeviceModel, Vendor

    vendor = Vendor.objects.create(name="Bench", slug="bench")
    method = ClaimingMethod.objects.get(slug="serial-mac")
    with_codes = ClaimingMethod.objects.get(slug="serial-claim-code")
    return (
        DeviceModel.objects.create(vendor=vendor, name="Bench Hub", slug="bench-hub", claiming_method=method),
        DeviceModel.objects.create(vendor=vendor, name="Bench Bulk", slug="bench-bulk", claiming_method=method),
        DeviceModel.objects.create(vendor=vendor, name="Bench Cam", slug="bench-cam", claiming_method=with_codes),
    )


def raw_copy_rate(path, device_model_id, rows, *, foreign_key=False, columns="identifier_1, identifier_2"):
    """COPY the file into a scratch copy of the serial-list table: same columns, same unique indexes;
    with `foreign_key`, also the model foreign key the real table checks for every row."""
    with psycopg.connect(DATABASE_URL, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS bench_scratch")
        conn.execute("CREATE TABLE bench_scratch (LIKE vendors_approvedidentity INCLUDING ALL)")
        conn.execute("ALTER TABLE bench_scratch ALTER code SET DEFAULT gen_random_uuid()")
        conn.execute(f"ALTER TABLE bench_scratch ALTER device_model_id SET DEFAULT {int(device_model_id)}")
        conn.execute("ALTER TABLE bench_scratch ALTER status SET DEFAULT 'approved'")
        conn.execute("ALTER TABLE bench_scratch ALTER created_at SET DEFAULT now()")
        if foreign_key:  # declared as Django declares it
            conn.execute(
                "ALTER TABLE bench_scratch ADD FOREIGN KEY (device_model_id) REFERENCES vendors_devicemodel (id) "
                "DEFERRABLE INITIALLY DEFERRED"
            )
        started = time.perf_counter()
        statement = f"COPY bench_scratch ({columns}) FROM STDIN (FORMAT csv, HEADER)"
        with conn.transaction(), conn.cursor() as cursor, open(path, "rb") as source, cursor.copy(statement) as copy:
            while chunk := source.read(1 << 20):
                copy.write(chunk)
        seconds = time.perf_counter() - started
        copied = conn.execute("SELECT count(*) FROM bench_scratch").fetchone()[0]
        conn.execute("DROP TABLE bench_scratch")
    assert copied == rows, copied
    return rows / seconds, seconds


def cli_rate(path, rows, model="bench-hub"):
    """The CLI's rate and its own peak memory (wait4's usage is the one child's, not every child's)."""
    started = time.perf_counter()
    command = [sys.executable, str(ROOT / "manage.py"), "import_identities", "--vendor", "bench", "--model", model]
    child = subprocess.Popen([*command, str(path)], env=ENV, cwd=ROOT)
    _pid, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - started
    assert child.returncode == 0, child.returncode
    print(f"  (the CLI process used {usage.ru_utime + usage.ru_stime:.1f} s of CPU)")
    return rows / seconds, seconds, usage.ru_maxrss / 1024


def bulk_create_rate(path, device_model, rows):
    from vendors.models import ApprovedIdentity

    serial, mac_field = device_model.claiming_method.ordered_fields()
    started = time.perf_counter()
    with open(path) as source:
        next(source)
        objects = []
        for line in source:
            raw_serial, raw_mac = line.rstrip("\n").split(",")
            objects.append(
                ApprovedIdentity(
                    device_model=device_model,
                    identifier_1=serial.clean_value(raw_serial),
                    identifier_2=mac_field.clean_value(raw_mac),
                )
            )
        ApprovedIdentity.objects.bulk_create(objects, batch_size=5000)
    seconds = time.perf_counter() - started
    assert ApprovedIdentity.objects.filter(device_model=device_model).count() == rows
    return rows / seconds, seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--bulk-rows", type=int, default=100_000)
    args = parser.parse_args()

    print(f"Database {DATABASE_URL}; recreating it and applying migrations ...", flush=True)
    recreate_database()
    setup_django()
    cli_model, bulk_model, code_model = bench_models()

    with tempfile.TemporaryDirectory() as tmp:
        big = Path(tmp) / "serial-list.csv"
        small = Path(tmp) / "bulk.csv"
        write_csv(big, args.rows)
        write_csv(small, args.bulk_rows, start=args.rows)
        print(f"CSV file: {args.rows:,} rows, {big.stat().st_size / 1e6:.1f} MB", flush=True)

        copy_rate, copy_seconds = raw_copy_rate(big, cli_model.pk, args.rows)
        print(
            f"raw psycopg COPY        {args.rows:>9,} rows {copy_seconds:7.2f} s {copy_rate:>10,.0f} rows/s", flush=True
        )
        import_rate, import_seconds, peak_mb = cli_rate(big, args.rows)
        print(f"import_identities (CLI) {args.rows:>9,} rows {import_seconds:7.2f} s {import_rate:>10,.0f} rows/s")
        fk_rate, fk_seconds = raw_copy_rate(big, cli_model.pk, args.rows, foreign_key=True)
        print(f"raw COPY + foreign key  {args.rows:>9,} rows {fk_seconds:7.2f} s {fk_rate:>10,.0f} rows/s")
        bulk_rate, bulk_seconds = bulk_create_rate(small, bulk_model, args.bulk_rows)
        print(f"ORM bulk_create         {args.bulk_rows:>9,} rows {bulk_seconds:7.2f} s {bulk_rate:>10,.0f} rows/s")
        serials = Path(tmp) / "serials.csv"
        write_serials_csv(serials, args.rows)
        code_copy_rate, code_copy_seconds = raw_copy_rate(serials, code_model.pk, args.rows, columns="identifier_1")
        print(
            f"raw COPY, serials only  {args.rows:>9,} rows {code_copy_seconds:7.2f} s {code_copy_rate:>10,.0f} rows/s"
        )
        code_rate, code_seconds, code_peak_mb = cli_rate(serials, args.rows, model="bench-cam")
        print(f"CLI, codes generated    {args.rows:>9,} rows {code_seconds:7.2f} s {code_rate:>10,.0f} rows/s")
        hashed = Path(tmp) / "serials-hashed.csv"
        write_serials_csv(hashed, args.rows, with_hashes=True)
        hashed_rate, hashed_seconds = raw_copy_rate(
            hashed, code_model.pk, args.rows, columns="identifier_1, claim_code_hash"
        )
        print(f"raw COPY, serial + hash {args.rows:>9,} rows {hashed_seconds:7.2f} s {hashed_rate:>10,.0f} rows/s")

    ratio = import_rate / copy_rate
    print(f"CLI / raw COPY rate: {ratio:.0%} (goal >= {RATIO_GOAL:.0%}: {'met' if ratio >= RATIO_GOAL else 'NOT met'})")
    print(f"CLI / raw COPY with the same foreign key as the real table: {import_rate / fk_rate:.0%} (for context)")
    print(
        f"CLI peak memory (max RSS): {peak_mb:.0f} MB "
        f"(goal < {MEMORY_GOAL_MB} MB: {'met' if peak_mb < MEMORY_GOAL_MB else 'NOT met'})"
    )
    print(f"CLI / bulk_create rate: {import_rate / bulk_rate:.1f}x")
    code_ratio = code_rate / code_copy_rate
    print(
        f"Claim codes generated: CLI / raw COPY rate {code_ratio:.0%} "
        f"(goal >= {RATIO_GOAL:.0%}: {'met' if code_ratio >= RATIO_GOAL else 'NOT met'}); peak memory "
        f"{code_peak_mb:.0f} MB (goal < {MEMORY_GOAL_MB} MB: {'met' if code_peak_mb < MEMORY_GOAL_MB else 'NOT met'})"
    )
    print(
        f"Claim codes generated: CLI / raw COPY of the same serials and hashes: {code_rate / hashed_rate:.0%} "
        "(for context)"
    )


if __name__ == "__main__":
    main()
