"""Offline alerts when a whole fleet goes offline at once.

    .venv/bin/python bench/bench_alerts.py [--devices 100000]

Recreates the PostgreSQL database `bench_alerts` (BENCH_DATABASE_URL overrides it) and loads, with
set-based SQL, one organization of N claimed devices whose last heartbeat is an hour old, with an
owner and three admins (subscribed by their role) and two viewers (not), and a second organization
whose owner must get nothing. In the same run, it measures:

- the baseline: the connectivity sweep alone (devices/telemetry.py), marking all N offline;
- then, with the devices online again and their events deleted, the Celery task the beat runs
  (devices.tasks.record_connectivity_changes): the same sweep, the planning of the alerts and the
  e-mails, its tasks run eagerly in this process; goal < 30 s and one e-mail per subscribed member.
"""

import argparse
import os
import time

from bench_heartbeats import load_fleet
from common import django_env, recreate_database, setup_django

DATABASE_URL = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/bench_alerts")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/6")
GOAL_SECONDS = 30
ENV = django_env(DATABASE_URL, REDIS_URL) | {"DJANGO_EMAIL_BACKEND": "django.core.mail.backends.locmem.EmailBackend"}


def add_members(model):
    """Three admins and two viewers beside the fleet's owner; another organization's owner."""
    from accounts.models import Membership, Organization, Role, User

    organization = Organization.objects.get(name="Bench Org")
    for n in range(3):
        Membership.objects.create(
            user=User.objects.create_user(f"admin{n}@bench.example"), organization=organization, role=Role.ADMIN
        )
    for n in range(2):
        Membership.objects.create(
            user=User.objects.create_user(f"viewer{n}@bench.example"), organization=organization, role=Role.VIEWER
        )
    other = Organization.objects.create(name="Other Org")
    Membership.objects.create(user=User.objects.create_user("other@bench.example"), organization=other, role=Role.OWNER)
    return organization


def silence(model):
    """Every device online, its last heartbeat an hour ago, no connectivity events."""
    from datetime import timedelta

    from django.utils import timezone

    from devices.models import Device, DeviceEvent

    DeviceEvent.objects.filter(kind__in=(DeviceEvent.Kind.WENT_OFFLINE, DeviceEvent.Kind.BACK_ONLINE)).delete()
    Device.objects.filter(device_model=model).update(online=True, last_seen_at=timezone.now() - timedelta(hours=1))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=100_000)
    args = parser.parse_args()

    print(f"Loading {args.devices:,} claimed devices into {DATABASE_URL} ...", flush=True)
    recreate_database(DATABASE_URL, ENV)
    setup_django(ENV)
    from django.core import mail
    from django.db import connection

    from config.celery_app import app
    from devices import tasks, telemetry

    app.conf.task_always_eager = True
    model, _ = load_fleet(args.devices)
    add_members(model)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")

    silence(model)
    started = time.monotonic()
    marked = telemetry.record_connectivity_changes()
    baseline = time.monotonic() - started
    print(f"baseline, the connectivity sweep alone: {marked:,} devices marked offline in {baseline:.2f} s")

    silence(model)
    mail.outbox = []
    started = time.monotonic()
    tasks.record_connectivity_changes()
    elapsed = time.monotonic() - started
    recipients = sorted(address for message in mail.outbox for address in message.to)
    print(
        f"sweep + alerts: {elapsed:.2f} s ({elapsed / baseline:.2f}x the sweep alone; goal < {GOAL_SECONDS} s), "
        f"{len(mail.outbox)} e-mails to {', '.join(recipients)}"
    )
    if mail.outbox:
        print(f"first e-mail: {mail.outbox[0].subject!r}, {len(mail.outbox[0].body):,} characters")
    expected = ["admin0@bench.example", "admin1@bench.example", "admin2@bench.example", "owner@bench.example"]
    ok = elapsed < GOAL_SECONDS and recipients == expected
    print("PASS" if ok else f"FAIL: expected one e-mail each to {expected}")
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()
