"""What PgBouncer in transaction mode costs: heartbeat intake and the device page, straight to
PostgreSQL and through PgBouncer, in one run.

    .venv/bin/python bench/bench_pgbouncer.py [--devices 2000] [--seconds 10] [--rounds 3]

Recreates the PostgreSQL database `bench_pgbouncer` (BENCH_DATABASE_URL overrides it), loads the
fleet of bench_heartbeats.py and a month of heartbeats for one device, and starts two gunicorns (two
workers per core each): one straight to PostgreSQL (prepared statements, server-side cursors), one
through a PgBouncer of its own (bench/common.py through_pgbouncer: DATABASE_POOLER=transaction, no
server-side binding). Then, round after round, alternating which goes first so that the machine's
drift falls on both:
- heartbeats from every device for S seconds with wrk at 64 connections (answers per second, p99);
- the device page, 20 requests (p95).
Goals: intake through PgBouncer at least 80% of straight, device page p95 within 1.25x.
"""

import argparse
import os
import statistics
import tempfile
from pathlib import Path

from bench_heartbeats import CONNECTIONS, HEARTBEAT_SCRIPT, PASSWORD, load_fleet, load_month_of_heartbeats
from common import (
    Browser,
    django_env,
    ensure_wrk,
    free_port,
    load_average,
    p95,
    recreate_database,
    run_wrk,
    setup_django,
    start_gunicorn,
    through_pgbouncer,
)

DATABASE_URL = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/bench_pgbouncer")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/6")
PORTS = range(14100, 14200)
INTAKE_GOAL, PAGE_GOAL = 0.80, 1.25
ENV = django_env(DATABASE_URL, REDIS_URL)
WAYS = ("straight", "PgBouncer")


def device_page_times(port, device, requests=20):
    browser = Browser(port)
    browser.sign_in("owner@bench.example", PASSWORD)
    times = []
    for n in range(requests + 3):
        status, _, _, elapsed_ms = browser.request("GET", f"/devices/{device.code}/")
        if status != 200:
            raise SystemExit(f"device page answered HTTP {status}")
        if n >= 3:  # warm-up
            times.append(elapsed_ms)
    return times


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=2000)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    ensure_wrk()

    print(f"Loading {args.devices:,} claimed, activated devices into {DATABASE_URL} ...", flush=True)
    recreate_database(DATABASE_URL, ENV)
    setup_django(ENV)
    model, tokens = load_fleet(args.devices)
    from devices.models import Device

    device = Device.objects.filter(device_model=model).order_by("pk").first()
    load_month_of_heartbeats(device)
    ports = {"straight": free_port(PORTS)}
    servers = [start_gunicorn(ports["straight"], ENV)]
    ports["PgBouncer"] = free_port(PORTS)
    pooled_env = through_pgbouncer(ENV)
    print(f"through PgBouncer: {pooled_env['DATABASE_URL']}")
    servers.append(start_gunicorn(ports["PgBouncer"], pooled_env))
    intake = {way: [] for way in WAYS}
    pages = {way: [] for way in WAYS}
    try:
        with tempfile.TemporaryDirectory() as scratch:
            token_file = Path(scratch) / "tokens.txt"
            token_file.write_text("\n".join(tokens) + "\n")
            script = Path(scratch) / "heartbeat.lua"
            script.write_text(HEARTBEAT_SCRIPT % {"tokens": token_file})
            print(f"load average before: {load_average()}")
            for way in WAYS:  # warm-up
                run_wrk(f"http://127.0.0.1:{ports[way]}", seconds=2, connections=CONNECTIONS, script=script)
            for round_number in range(args.rounds):
                order = WAYS if round_number % 2 == 0 else WAYS[::-1]
                for way in order:
                    result = run_wrk(
                        f"http://127.0.0.1:{ports[way]}", seconds=args.seconds, connections=CONNECTIONS, script=script
                    )
                    intake[way].append(result)
                    pages[way] += device_page_times(ports[way], device)
                    print(
                        f"round {round_number + 1}, {way}: {result['rate']:,.0f} heartbeats/s, "
                        f"p99 {result['p99'] * 1000:.0f} ms, errors {result['errors']}",
                        flush=True,
                    )
    finally:
        for server in servers:
            server.terminate()
            server.wait(timeout=10)

    rate = {way: statistics.mean(r["rate"] for r in intake[way]) for way in WAYS}
    page = {way: p95(pages[way]) for way in WAYS}
    intake_ratio = rate["PgBouncer"] / rate["straight"]
    page_ratio = page["PgBouncer"] / page["straight"]
    print()
    for way in WAYS:
        p99 = max(r["p99"] for r in intake[way]) * 1000
        print(
            f"{way:>9}: heartbeats {rate[way]:,.0f}/s (worst p99 {p99:.0f} ms); device page p95 {page[way]:.1f} ms, "
            f"median {statistics.median(pages[way]):.1f} ms over {len(pages[way])} requests"
        )
    print(f"through PgBouncer: intake {intake_ratio:.1%} of straight, device page p95 {page_ratio:.2f}x")
    print(f"load average after: {load_average()}")
    intake_met = "met" if intake_ratio >= INTAKE_GOAL else "NOT met"
    page_met = "met" if page_ratio <= PAGE_GOAL else "NOT met"
    print(f"goal intake through PgBouncer >= {INTAKE_GOAL:.0%} of straight: {intake_met}")
    print(f"goal device page p95 through PgBouncer <= {PAGE_GOAL}x straight: {page_met}")


if __name__ == "__main__":
    main()
