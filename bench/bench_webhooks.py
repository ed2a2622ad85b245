"""Webhook fan-out: 10,000 deliveries to slow endpoints while another organization's still arrive.

    .venv/bin/python bench/bench_webhooks.py [--devices 500] [--endpoints 20] [--workers 2] [--threads 12]

Recreates the PostgreSQL database `bench_webhooks` (BENCH_DATABASE_URL overrides it; Redis is
BENCH_REDIS_URL) and starts real `celery -A config worker` processes without -Q, as production
does, plus beat. A local receiver answers the busy organization's endpoints in 200 ms and the
quiet organization's at once. In one run:

- the baseline: the quiet organization's latency (commit of a device move to the receiver) with
  idle workers;
- then the busy organization's fleet of N devices goes offline in one connectivity sweep, each
  event fanned out to its E endpoints (N x E deliveries, 10,000 by default), and while that backlog
  drains, the quiet organization moves a device every second: its latency p50/p95/max (goal: every
  one within 5 s) and the busy organization's throughput against the most its endpoints allow
  (one delivery at a time per endpoint: E / 0.2 s).
"""

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

from bench_heartbeats import load_fleet
from common import (
    ROOT,
    django_env,
    p95,
    recreate_database,
    setup_django,
    start_celery_beat,
    start_celery_worker,
    stop_processes,
)

DATABASE_URL = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/bench_webhooks")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/5")
SLOW_ANSWER = 0.2
GOAL_SECONDS = 5.0
ENV = django_env(DATABASE_URL, REDIS_URL) | {
    "WEBHOOK_ALLOW_PRIVATE_TARGETS": "true",
    "CELERY_QUEUE": "bench-webhooks",
    "CELERY_DB_REUSE_MAX": "100000",
}


def quiet_organization(model):
    """A second organization with two spaces and one device of the fleet, moved between them."""
    from accounts.models import Organization
    from devices.models import Device
    from spaces.models import Space

    quiet = Organization.objects.create(name="Quiet Org")
    spaces = [Space.objects.create(organization=quiet, name=name) for name in ("North", "South")]
    device = Device.objects.filter(device_model=model).order_by("pk").first()
    Device.objects.filter(pk=device.pk).update(organization=quiet, space=spaces[0])
    return Device.objects.get(pk=device.pk), spaces


def quiet_latency(receiver, device, spaces, *, samples, pause):
    """Move `device` `samples` times, `pause` s apart: seconds from each move's commit to its arrival."""
    from devices.actions import move_device

    latencies = []
    for _ in range(samples):
        before = sum(request.path == "/quiet" for request in receiver.requests)
        device = move_device(device, space=next(space for space in spaces if space.pk != device.space_id), actor=None)
        committed = time.monotonic()
        deadline = committed + 60
        while sum(request.path == "/quiet" for request in receiver.requests) == before:
            if time.monotonic() > deadline:
                raise SystemExit("a quiet organization's event did not arrive within 60 s")
            time.sleep(0.005)
        arrived = next(r.at for r in reversed(receiver.requests) if r.path == "/quiet")
        latencies.append(arrived - committed)
        time.sleep(pause)
    return latencies


def summary(latencies):
    return (
        f"p50 {statistics.median(latencies):.3f} s, p95 {p95(latencies):.3f} s, max {max(latencies):.3f} s "
        f"({len(latencies)} events)"
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=500)
    parser.add_argument("--endpoints", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=12)
    args = parser.parse_args()
    total = args.devices * args.endpoints

    print(f"Loading {args.devices:,} devices and {args.endpoints} endpoints into {DATABASE_URL} ...", flush=True)
    recreate_database(DATABASE_URL, ENV)
    setup_django(ENV)
    sys.path.insert(0, str(ROOT))
    from datetime import timedelta

    from django.utils import timezone

    from accounts.models import Organization
    from devices.models import Device
    from devices.telemetry import record_connectivity_changes
    from tests.factories import webhook_endpoint
    from tests.webhook_receiver import Receiver
    from webhooks.models import Delivery

    model, _ = load_fleet(args.devices + 1)
    busy = Organization.objects.get(name="Bench Org")
    device, spaces = quiet_organization(model)
    receiver = Receiver(lambda path: (200, {}, 0 if path == "/quiet" else SLOW_ANSWER))
    for n in range(args.endpoints):
        webhook_endpoint(busy, receiver.url(f"/busy/{n}"), events=["device.offline"])
    webhook_endpoint(device.organization, receiver.url("/quiet"))

    logs = Path(os.environ.get("BENCH_LOG_DIR", "/tmp")) / "bench_webhooks"
    logs.mkdir(parents=True, exist_ok=True)
    processes = [
        start_celery_worker(
            ENV,
            concurrency=args.threads,
            prefetch=1,
            log=logs / f"worker{n}.log",
            extra=("--hostname", f"bench-webhooks-{n}@%h"),
        )
        for n in range(args.workers)
    ]
    processes.append(start_celery_beat(ENV, schedule_file=logs / "beat-schedule", log=logs / "beat.log"))
    try:
        time.sleep(10)  # the workers start and connect
        quiet_latency(receiver, device, spaces, samples=3, pause=0.2)  # and warm up
        baseline = quiet_latency(receiver, device, spaces, samples=10, pause=0.2)
        print(f"baseline, the quiet organization with idle workers: {summary(baseline)}", flush=True)

        Device.objects.filter(organization=busy).update(last_seen_at=timezone.now() - timedelta(hours=1))
        started = time.monotonic()
        record_connectivity_changes()
        queued = Delivery.objects.filter(endpoint__organization=busy).count()
        print(
            f"{queued:,} deliveries of the busy organization queued in {time.monotonic() - started:.2f} s", flush=True
        )
        started = time.monotonic()

        under_load = []
        while (delivered := sum(r.path.startswith("/busy/") for r in receiver.requests)) < queued * 0.9:
            under_load += quiet_latency(receiver, device, spaces, samples=1, pause=1.0)
            if time.monotonic() - started > 1800:
                raise SystemExit(f"only {delivered:,} of {queued:,} delivered in 30 minutes")
        while Delivery.objects.filter(endpoint__organization=busy, status=Delivery.Status.PENDING).exists():
            time.sleep(0.2)
        elapsed = time.monotonic() - started
    finally:
        stop_processes(processes)
        receiver.close()

    busy_requests = [r for r in receiver.requests if r.path.startswith("/busy/")]
    ids = {(r.path, json.loads(r.body)["id"]) for r in busy_requests}
    succeeded = Delivery.objects.filter(endpoint__organization=busy, status=Delivery.Status.SUCCEEDED).count()
    ceiling = args.endpoints / SLOW_ANSWER
    throughput = succeeded / elapsed
    print(
        f"busy organization: {succeeded:,} of {total:,} deliveries succeeded in {elapsed:.1f} s, "
        f"{throughput:.1f}/s ({throughput / ceiling:.0%} of the {ceiling:.0f}/s its {args.endpoints} endpoints "
        f"allow at one delivery each at a time); {len(busy_requests) - len(ids)} sent twice"
    )
    print(f"quiet organization during the backlog: {summary(under_load)}")
    print(f"quiet organization, p95 under load / idle: {p95(under_load) / p95(baseline):.1f}x")
    met = max(under_load) < GOAL_SECONDS and succeeded == total
    print(
        f"goal every quiet event within {GOAL_SECONDS:.0f} s while {total:,} busy deliveries drain: "
        f"{'met' if met else 'NOT met'}"
    )
    raise SystemExit(0 if met else 1)


if __name__ == "__main__":
    main()
