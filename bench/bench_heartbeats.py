"""Heartbeat intake from a fleet, and the device page of a device with a month of telemetry.

    .venv/bin/python bench/bench_heartbeats.py [--devices 2000] [--seconds 30]

Recreates the PostgreSQL database `bench_i6` (BENCH_DATABASE_URL overrides it) and loads, with
set-based SQL, a space of N claimed, activated devices whose device keys are known to the bench
(only their SHA-256 is stored, as after a real activation; the activation itself is measured by
bench_activation.py). Starts gunicorn (two workers per core) on 127.0.0.1:14000-14099, and for the
batched intake a Celery worker on the telemetry queue and beat (which sends the writer every
second), as production runs them; in the same run, measures with wrk at the same concurrency:

- the trivial JSON view /api/v1/health (the baseline), for 10 s right before each heartbeat run;
- heartbeats from all N devices for S seconds, each with two metrics and its config version, written
  directly (HEARTBEAT_BATCHING off: the intake before batching, for comparison) and batched (the
  request appends to the Redis stream, the writer stores batches): heartbeats per second counted as
  rows really stored once the writer has drained the stream (the drain's time counted in), p99
  latency, the ratio to the baseline (goal >= 40%, p99 < 250 ms) and heartbeats answered 200 but
  not stored (goal: none);
- the device page of one device holding 30 days of minute-by-minute heartbeats (43,200 rows):
  median and p95 over 50 requests (goal p95 < 200 ms);
- the device page of a device with a year of minute heartbeats (525,600 rows in daily partitions,
  rolled up by the beat task's function) against a device with one day, p95 over 60 requests per
  range each, in turns, with the year's raw rows kept and after the retention dropped them (goal: within 1.2x of
  the day's, every range);
- one day of the fleet's minute heartbeats (N x 1,440 rows, 2,880,000 for 2,000 devices) dropped as
  a partition, against the DELETE of the same rows (goal: drop under 1 s).
"""

import argparse
import base64
import hashlib
import os
import statistics
import tempfile
import time
from pathlib import Path

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
    start_celery_beat,
    start_celery_worker,
    start_gunicorn,
    stop_processes,
)

DATABASE_URL = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/bench_i6")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/6")
PORTS = range(14000, 14100)
CONNECTIONS = 64
PASSWORD = "bench-pass-2026"  # noqa: S105 (a throw-away bench account)
RATIO_GOAL, P99_GOAL_MS, PAGE_GOAL_MS = 0.40, 250, 200
DRAIN_TIMEOUT = 120  # seconds the writer may take to store what the wrk run left in the stream
ENV = django_env(DATABASE_URL, REDIS_URL) | {"HEARTBEAT_BATCHING": "true"}
DIRECT_ENV = ENV | {"HEARTBEAT_BATCHING": "false"}

HEARTBEAT_SCRIPT = """
local tokens = {}
for line in io.lines("%(tokens)s") do tokens[#tokens + 1] = line end
local n = 0
request = function()
  n = n + 1
  local body = '{"metrics": {"temperature": 21.5, "cpu": ' .. (n %% 100) .. '}, "config_version": 0}'
  local headers = {["Authorization"] = "Bearer " .. tokens[(n %% #tokens) + 1], ["Content-Type"] = "application/json"}
  return wrk.format("POST", "/api/v1/device/heartbeat", headers, body)
end
"""


def device_key(serial):
    """The bench's stand-in for the key a real activation derives (32 bytes)."""
    return hashlib.sha256(f"bench-key-{serial}".encode()).digest()


def load_fleet(count):
    """Tenants with the ORM; the identities and claimed, activated devices with INSERT ... SELECT."""
    from django.db import connection

    from accounts.management.commands.seed_demo import HUB_COMMANDS, HUB_SETTINGS
    from accounts.models import Membership, Organization, Role, User
    from spaces.models import Space
    from vendors.models import ClaimingMethod, DeviceModel, Vendor

    vendor = Vendor.objects.create(name="Bench Devices", slug="bench")
    model = DeviceModel.objects.create(
        vendor=vendor,
        name="Bench Hub",
        slug="bench-hub",
        claiming_method=ClaimingMethod.objects.get(slug="serial-mac"),
        command_declarations=HUB_COMMANDS,
        setting_declarations=HUB_SETTINGS,
    )
    organization = Organization.objects.create(name="Bench Org")
    organization.connected_vendors.add(vendor)
    space = Space.objects.create(organization=organization, name="Fleet")
    owner = User.objects.create_user("owner@bench.example", PASSWORD)
    Membership.objects.create(user=owner, organization=organization, role=Role.OWNER)
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO vendors_approvedidentity (code, device_model_id, identifier_1, identifier_2, status, created_at)
            SELECT gen_random_uuid(), %s, 'HB-' || lpad(n::text, 7, '0'),
                   '02:60:' || upper(substr(lpad(to_hex(n), 8, '0'), 1, 2)) || ':'
                            || upper(substr(lpad(to_hex(n), 8, '0'), 3, 2)) || ':'
                            || upper(substr(lpad(to_hex(n), 8, '0'), 5, 2)) || ':'
                            || upper(substr(lpad(to_hex(n), 8, '0'), 7, 2)),
                   'approved', now()
            FROM generate_series(1, %s) AS n
            """,
            [model.pk, count],
        )
        cursor.execute(
            """
            INSERT INTO devices_device (code, identity_id, device_model_id, status, organization_id, space_id, name,
                                        claimed_at, activated_at, last_seen_at, key_hash, online, created_at)
            SELECT gen_random_uuid(), i.id, i.device_model_id, 'claimed', %s, %s, 'Unit ' || i.identifier_1,
                   now(), now(), now(),
                   encode(sha256(sha256(convert_to('bench-key-' || i.identifier_1, 'UTF8'))), 'hex'),
                   true, now()
            FROM vendors_approvedidentity i WHERE i.device_model_id = %s
            """,
            [organization.pk, space.pk, model.pk],
        )
        cursor.execute("SELECT identifier_1 FROM vendors_approvedidentity WHERE device_model_id = %s", [model.pk])
        serials = [row[0] for row in cursor.fetchall()]
    return model, [base64.urlsafe_b64encode(device_key(s)).rstrip(b"=").decode() for s in serials]


def load_month_of_heartbeats(device):
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO devices_heartbeat (device_id, received_at, metrics)
            SELECT %s, now() - make_interval(mins => n),
                   jsonb_build_object('temperature', 20 + 3 * sin(n / 90.0), 'cpu', 30 + 20 * sin(n / 30.0),
                                      'memory', 40 + (n %% 17))
            FROM generate_series(1, 30 * 24 * 60) AS n
            """,
            [device.pk],
        )
        cursor.execute("VACUUM ANALYZE devices_heartbeat")
    return 30 * 24 * 60


def heartbeat_rows():
    from devices.models import Heartbeat

    return Heartbeat.objects.count()


def stream_waiting():
    """Entries in the intake stream not yet written (appended or taken by a writer, not acknowledged)."""
    from devices import heartbeat_intake
    from portal.redis import redis_client, redis_key

    return redis_client().xlen(redis_key(heartbeat_intake.STREAM))


def warm_up(base):
    """Until every gunicorn worker has booted: short runs of the trivial view until two agree within 25%."""
    rates = []
    for _ in range(6):
        rates.append(run_wrk(f"{base}/api/v1/health", seconds=3, connections=CONNECTIONS)["rate"])
        if len(rates) > 1 and abs(rates[-1] - rates[-2]) <= 0.25 * rates[-1]:
            return


def wait_for_the_writer(timeout=60):
    """Until the worker has run the writer once (its consumer group exists): its start must not
    weigh on the baseline."""
    from devices import heartbeat_intake
    from portal.redis import redis_client, redis_key

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if redis_client().exists(redis_key(heartbeat_intake.STREAM)):
            return
        time.sleep(0.5)
    raise SystemExit(f"the heartbeat writer did not run within {timeout} s")


def measure_intake(base, script, seconds):
    """The trivial view for 10 s (the baseline, right before: the machine's load varies), then wrk
    heartbeats for `seconds`, then wait for the writer to empty the stream: the rows stored, the
    seconds from the start to the last one stored, and wrk's figures."""
    baseline = run_wrk(f"{base}/api/v1/health", seconds=10, connections=CONNECTIONS)
    before = heartbeat_rows()
    started = time.monotonic()
    beats = run_wrk(base, seconds=seconds, connections=CONNECTIONS, script=script)
    sent = time.monotonic() - started
    # Requests wrk left in flight still append when it stops: done once the stream is empty and no
    # row came for a second.
    deadline = time.monotonic() + DRAIN_TIMEOUT
    stored, last_change = heartbeat_rows(), time.monotonic()
    while time.monotonic() < deadline and (stream_waiting() or time.monotonic() - last_change < 1.0):
        time.sleep(0.2)
        if (now_stored := heartbeat_rows()) != stored:
            stored, last_change = now_stored, time.monotonic()
    elapsed = last_change - started
    waiting = stream_waiting()
    stored = heartbeat_rows() - before
    answered = beats["requests"] - beats["errors"]
    lost = max(0, answered - stored)
    figures = {"stored": stored, "lost": lost, "drain": max(0.0, elapsed - sent), "elapsed": max(elapsed, sent)}
    return {**beats, **figures, "waiting": waiting, "baseline": baseline}


def report_intake(label, args, figures):
    rate, baseline = figures["stored"] / figures["elapsed"], figures["baseline"]
    print(f"trivial JSON view /api/v1/health: {baseline['rate']:,.0f} requests/s at {CONNECTIONS} connections")
    print(
        f"heartbeats {label} from {args.devices:,} devices for {args.seconds} s: {figures['requests']:,} sent, "
        f"{figures['stored']:,} stored (the last {figures['drain']:.1f} s after wrk stopped) = {rate:,.0f} "
        f"heartbeats/s = {rate / baseline['rate']:.1%} of the trivial view; p99 {figures['p99'] * 1000:.0f} ms; "
        f"errors {figures['errors']}; answered but not stored {figures['lost']}"
    )
    return rate / baseline["rate"]


def overall_ratio(rounds):
    """Heartbeats stored per second over every round, to the trivial view's mean rate before them."""
    rate = sum(figures["stored"] for figures in rounds) / sum(figures["elapsed"] for figures in rounds)
    return rate / statistics.mean(figures["baseline"]["rate"] for figures in rounds)


YEAR_RATIO_GOAL, PARTITION_DROP_GOAL_S = 1.2, 1.0


def load_minute_heartbeats(device, days, *, now):
    """`days` of minute-by-minute heartbeats (three metrics) of `device` before `now`, set-based."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO devices_heartbeat (device_id, received_at, metrics)
            SELECT %s, %s - make_interval(mins => n),
                   jsonb_build_object('temperature', 20 + 3 * sin(n / 90.0), 'cpu', 30 + 20 * sin(n / 30.0),
                                      'memory', 40 + (n %% 17))
            FROM generate_series(1, %s) AS n
            """,
            [device.pk, now, days * 24 * 60],
        )
    return days * 24 * 60


def partition_days(first, last):
    """Create the heartbeat partitions of the days from `first` to `last` that have none."""
    from devices import heartbeat_partitions

    existing = heartbeat_partitions.partitioned_days()
    for day in heartbeat_partitions.days_between(first, last):
        if day not in existing:
            heartbeat_partitions.create_partition(day)


def page_timings(browser, devices, range_key, requests=60):
    """Milliseconds of `requests` loads of the device page over `range_key` for each of `devices`
    (after five to warm up), taken in turns so that the machine's load weighs on each alike."""
    timings = {device.pk: [] for device in devices}
    for n in range(requests + 5):
        for device in devices:
            status, _, body, elapsed_ms = browser.request("GET", f"/devices/{device.code}/?range={range_key}")
            if status != 200 or b"Monitoring" not in body:
                raise SystemExit(f"device page ({range_key}) answered HTTP {status}")
            if n >= 5:
                timings[device.pk].append(elapsed_ms)
    return [timings[device.pk] for device in devices]


def bench_year_of_history(browser, model):
    """The device page of a device with a year of minute heartbeats (525,600 rows, then rolled up)
    against the page of a device with one day of them, p95 per range: with the year's raw rows all
    kept, then after the retention dropped the partitions older than HEARTBEAT_RETENTION_DAYS.
    The two devices' pages are requested in turns, 60 each per range."""
    from datetime import timedelta

    from django.db import connection
    from django.utils import timezone

    from devices import heartbeat_partitions
    from devices.models import Device, MetricRollup, RollupProgress
    from devices.monitoring import RANGES
    from devices.rollups import floor_time, roll_up_heartbeats

    now = timezone.now()
    year_device, day_device = Device.objects.filter(device_model=model).order_by("pk")[1:3]
    started = time.monotonic()
    partition_days((now - timedelta(days=366)).date(), (now + timedelta(days=7)).date())
    partitioning = time.monotonic() - started
    started = time.monotonic()
    rows = load_minute_heartbeats(year_device, 365, now=now) + load_minute_heartbeats(day_device, 1, now=now)
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE devices_heartbeat")
    loading = time.monotonic() - started
    # The first run starts from the raw retention; a year of raw rows is rolled up from its start.
    for resolution in (MetricRollup.Resolution.HOUR, MetricRollup.Resolution.DAY):
        # update_or_create: beat's own roll-up (the telemetry worker runs it) may have started already.
        RollupProgress.objects.update_or_create(
            resolution=resolution, defaults={"rolled_up_until": floor_time(now - timedelta(days=366), resolution)}
        )
    started = time.monotonic()
    roll_up_heartbeats()
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE devices_metricrollup")
    rolling = time.monotonic() - started
    lines = [
        f"year of history: {rows:,} heartbeats loaded in {loading:.1f} s into daily partitions "
        f"(created in {partitioning:.1f} s), rolled up in {rolling:.1f} s "
        f"({MetricRollup.objects.filter(device=year_device).count():,} rollup rows for the year's device)"
    ]
    results = {}
    for stage in ("raw year kept", "after retention"):
        if stage == "after retention":
            done = heartbeat_partitions.maintain_heartbeat_partitions()
            lines.append(f"retention: {len(done.dropped)} daily partitions dropped")
        for key in RANGES:
            year_ms, day_ms = page_timings(browser, [year_device, day_device], key)
            year, day = p95(year_ms), p95(day_ms)
            results[stage, key] = year / day
            lines.append(
                f"device page, {stage}, range {key}: p95 {year:.1f} ms with a year of history, {day:.1f} ms with "
                f"one day = {year / day:.2f}x (medians {statistics.median(year_ms):.1f} and "
                f"{statistics.median(day_ms):.1f} ms)"
            )
    met = all(ratio <= YEAR_RATIO_GOAL for ratio in results.values())
    lines.append(f"goal device page with a year within {YEAR_RATIO_GOAL}x of one day, every range: {_met(met)}")
    return lines


def bench_partition_drop(model, devices):
    """Dropping one day's partition of `devices` devices' minute heartbeats against the DELETE of
    the same rows (timed in a transaction rolled back, so that the same rows are then dropped)."""
    from datetime import timedelta

    from django.db import connection, transaction
    from django.utils import timezone

    from devices import heartbeat_partitions

    day = (timezone.now() - timedelta(days=400)).date()
    start = heartbeat_partitions.day_start(day)
    heartbeat_partitions.create_partition(day)
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO devices_heartbeat (device_id, received_at, metrics)
            SELECT d.id, %s + make_interval(mins => n), jsonb_build_object('temperature', 21.5, 'cpu', n %% 100)
            FROM devices_device d CROSS JOIN generate_series(0, 24 * 60 - 1) AS n WHERE d.device_model_id = %s
            """,
            [start, model.pk],
        )
        rows = cursor.rowcount
        cursor.execute(f"VACUUM ANALYZE {heartbeat_partitions.partition_name(day)}")
    with transaction.atomic():
        started = time.monotonic()
        with connection.cursor() as cursor:
            cursor.execute(
                "DELETE FROM devices_heartbeat WHERE received_at >= %s AND received_at < %s",
                [start, start + timedelta(days=1)],
            )
            deleted = cursor.rowcount
        deleting = time.monotonic() - started
        transaction.set_rollback(True)
    started = time.monotonic()
    heartbeat_partitions.drop_partition(day)
    dropping = time.monotonic() - started
    return [
        f"one day of {devices:,} devices' minute heartbeats ({rows:,} rows in partition "
        f"{heartbeat_partitions.partition_name(day)}): DELETE of the {deleted:,} rows {deleting:.2f} s, "
        f"partition drop {dropping * 1000:.1f} ms = {deleting / dropping:,.0f}x faster",
        f"goal partition drop < {PARTITION_DROP_GOAL_S:.0f} s: {_met(dropping < PARTITION_DROP_GOAL_S)}",
    ]


def bench_writer(model, count):
    """One writer (in this process, as one telemetry worker thread runs it) draining `count`
    heartbeats appended to the stream at once: heartbeats stored per second, and the bytes each
    takes in its partition (heap, TOAST and primary key) and in Redis while it waits."""
    from datetime import timedelta
    from types import SimpleNamespace

    from django.db import connection
    from django.utils import timezone

    from devices import heartbeat_intake, heartbeat_partitions
    from devices.models import Device
    from portal.redis import redis_client, redis_key

    now = timezone.now()
    devices = [
        SimpleNamespace(pk=pk, key_hash=key_hash, claimed_at=claimed_at)
        for pk, key_hash, claimed_at in Device.objects.filter(device_model=model).values_list(
            "pk", "key_hash", "claimed_at"
        )
    ]
    partition = heartbeat_partitions.partition_name(now.date())

    def partition_bytes():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_total_relation_size(%s)", [partition])
            return cursor.fetchone()[0]

    before = partition_bytes()
    for n in range(count):
        device = devices[n % len(devices)]
        heartbeat_intake.append_heartbeat(
            device,
            claimed_at=device.claimed_at,
            received_at=now - timedelta(microseconds=n),
            metrics={"temperature": 21.5, "cpu": n % 100},
            config_version=0,
        )
    stream_bytes = redis_client().memory_usage(redis_key(heartbeat_intake.STREAM)) or 0
    started = time.monotonic()
    handled = 0
    while redis_client().xlen(redis_key(heartbeat_intake.STREAM)):
        handled += heartbeat_intake.write_buffered_heartbeats(seconds=60)
    elapsed = time.monotonic() - started
    with connection.cursor() as cursor:
        cursor.execute(f"VACUUM ANALYZE {partition}")
    stored_bytes = (partition_bytes() - before) / count
    return [
        f"one writer drained {handled:,} heartbeats in {elapsed:.1f} s = {handled / elapsed:,.0f} heartbeats/s stored; "
        f"{stored_bytes:,.0f} bytes per heartbeat in its partition, "
        f"{stream_bytes / count:,.0f} bytes in Redis while it waits"
    ]


def _met(condition):
    return "met" if condition else "NOT met"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=2000)
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--writer-heartbeats", type=int, default=100_000)
    args = parser.parse_args()
    ensure_wrk()

    print(f"Loading {args.devices:,} claimed, activated devices into {DATABASE_URL} ...", flush=True)
    recreate_database(DATABASE_URL, ENV)
    setup_django(ENV)
    from django.conf import settings

    from config.celery_queues import queue_name
    from devices import heartbeat_intake
    from portal.redis import redis_client, redis_key

    redis_client().delete(redis_key(heartbeat_intake.STREAM))  # what an earlier run may have left
    model, tokens = load_fleet(args.devices)
    scratch = tempfile.TemporaryDirectory()
    token_file = Path(scratch.name) / "tokens.txt"
    token_file.write_text("\n".join(tokens) + "\n")
    script = Path(scratch.name) / "heartbeat.lua"
    script.write_text(HEARTBEAT_SCRIPT % {"tokens": token_file})

    # The writer as production runs it: beat sends it every second to a worker on the telemetry queue.
    processes = [
        start_celery_worker(
            ENV, queue=queue_name(settings.CELERY_TASK_DEFAULT_QUEUE, "telemetry"), concurrency=2, prefetch=1
        ),
        start_celery_beat(ENV, schedule_file=Path(scratch.name) / "beat-schedule"),
    ]
    # Two servers side by side, the intake before batching and the batched one, measured in turns:
    # other work on the machine then weighs on both alike.
    direct_port = free_port(PORTS)
    processes.append(start_gunicorn(direct_port, DIRECT_ENV))
    port = free_port([p for p in PORTS if p != direct_port])
    processes.append(start_gunicorn(port, ENV))
    direct_base, base = f"http://127.0.0.1:{direct_port}", f"http://127.0.0.1:{port}"
    try:
        wait_for_the_writer()
        print(f"gunicorn: {2 * os.cpu_count()} workers on {direct_base} (direct) and {base} (batched)")
        print(f"load average before: {load_average()}")
        warm_up(direct_base)
        warm_up(base)
        direct, batched = [], []
        for _ in range(args.rounds):
            direct.append(measure_intake(direct_base, script, args.seconds))
            batched.append(measure_intake(base, script, args.seconds))
        from devices.models import Device

        device = Device.objects.filter(device_model=model).order_by("pk").first()
        month = load_month_of_heartbeats(device)
        browser = Browser(port)
        browser.sign_in("owner@bench.example", PASSWORD)
        timings = []
        for n in range(55):
            status, _, body, elapsed_ms = browser.request("GET", f"/devices/{device.code}/")
            if status != 200 or b"Monitoring" not in body:
                raise SystemExit(f"device page answered HTTP {status}")
            if n >= 5:  # the first five warm the server up
                timings.append(elapsed_ms)
        storage = bench_year_of_history(browser, model) + bench_partition_drop(model, args.devices)
    finally:
        stop_processes(processes)
        scratch.cleanup()
    storage += bench_writer(model, args.writer_heartbeats)

    print()
    for n, (before, after) in enumerate(zip(direct, batched, strict=True), 1):
        print(f"round {n}:")
        report_intake("written directly (before batching)", args, before)
        report_intake("batched (stream + writer)", args, after)
    direct_ratio, ratio = overall_ratio(direct), overall_ratio(batched)
    print(f"over {args.rounds} rounds: direct {direct_ratio:.1%}, batched {ratio:.1%} of the trivial view")
    waiting = sum(figures["waiting"] for figures in batched)
    if waiting:
        print(f"the writer left {waiting:,} heartbeats in the stream after {DRAIN_TIMEOUT} s")
    print(
        f"device page with {month:,} heartbeats (30 days, one a minute): median {statistics.median(timings):.1f} ms, "
        f"p95 {p95(timings):.1f} ms over {len(timings)} requests (goal p95 < {PAGE_GOAL_MS} ms)"
    )
    print(f"load average after: {load_average()}")
    print(f"goal batched intake >= {RATIO_GOAL:.0%} of the trivial view: {_met(ratio >= RATIO_GOAL)}")
    p99_ms = max(figures["p99"] for figures in batched) * 1000
    print(f"goal batched intake p99 < {P99_GOAL_MS} ms (worst round): {_met(p99_ms < P99_GOAL_MS)}")
    nothing_lost = not waiting and all(figures["lost"] == 0 and figures["errors"] == 0 for figures in batched)
    print(f"goal batched intake loses nothing: {_met(nothing_lost)}")
    print(f"goal device page p95 < {PAGE_GOAL_MS} ms: {_met(p95(timings) < PAGE_GOAL_MS)}")
    print("\n".join(storage))


if __name__ == "__main__":
    main()
