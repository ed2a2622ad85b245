"""Telemetry storage from an existing database on, on PostgreSQL and on the embedded default
(SQLite): the heartbeat table is rebuilt (partitioned on PostgreSQL) and keeps its rows, the
rollups are built by the same task, the page's ranges read them, and the retention deletes what is
past it. Runs in a subprocess on a database of its own, as test_embedded_default does."""

import json
import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from django.db import connection

ROOT = Path(__file__).resolve().parent.parent

SCRIPT = """
import json
from datetime import timedelta
import django
django.setup()
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from django.db.migrations.executor import MigrationExecutor

# Every app migrated, the devices up to the last migration before the heartbeats' new table.
executor = MigrationExecutor(connection)
leaves = [node for node in executor.loader.graph.leaf_nodes() if node[0] != "devices"]
executor.migrate([*leaves, ("devices", "0010_device_name_trigram")])
from tests.factories import ClaimedDeviceFactory

now = timezone.now()
device = ClaimedDeviceFactory()
with connection.cursor() as cursor:
    for minutes in range(1, 181):
        at = connection.ops.adapt_datetimefield_value(now - timedelta(minutes=minutes))
        cursor.execute(
            "INSERT INTO devices_heartbeat (device_id, received_at, metrics) VALUES (%s, %s, %s)",
            [device.pk, at, json.dumps({"cpu": minutes % 10, "temperature": 20.5})],
        )
    old = connection.ops.adapt_datetimefield_value(now - timedelta(days=31))
    cursor.execute(
        "INSERT INTO devices_heartbeat (device_id, received_at, metrics) VALUES (%s, %s, '{}')", [device.pk, old]
    )
call_command("migrate", verbosity=0)
call_command("createcachetable", verbosity=0)  # as bin/run does: the cache is a table without Redis

from devices.heartbeat_partitions import maintain_heartbeat_partitions
from devices.models import Heartbeat, MetricRollup
from devices.monitoring import RANGES, monitoring
from devices.rollups import roll_up_heartbeats

result = {"carried_over": Heartbeat.objects.count()}
result["deleted"] = maintain_heartbeat_partitions(now).deleted
result["before_rollups"] = {key: len(monitoring(device, RANGES[key], now=now)["series"]["cpu"]) for key in RANGES}
roll_up_heartbeats(now)
hour = MetricRollup.objects.filter(resolution=3600, metric="cpu").order_by("bucket_start").last()
raw = [
    beat.metrics["cpu"] for beat in Heartbeat.objects.filter(received_at__gte=hour.bucket_start,
                                                             received_at__lt=hour.bucket_start + timedelta(hours=1))
]
result["hour"] = [hour.count, hour.minimum, hour.maximum, hour.total]
result["raw_hour"] = [len(raw), min(raw), max(raw), sum(raw)]
result["minutes"] = MetricRollup.objects.filter(resolution=60, metric="cpu").count()
result["after_rollups"] = {}
for key in RANGES:
    data = monitoring(device, RANGES[key], now=now)
    seconds_up = round(data["uptime"] * RANGES[key].span.total_seconds())
    result["after_rollups"][key] = [len(data["series"]["cpu"]), seconds_up]
if connection.vendor == "postgresql":
    with connection.cursor() as cursor:
        cursor.execute("SELECT relkind FROM pg_class WHERE relname = 'devices_heartbeat'")
        result["partitioned"] = cursor.fetchone()[0] == "p"
else:
    result["partitioned"] = False
print(json.dumps(result))
"""


@pytest.fixture
def sqlite_database(tmp_path):
    return f"sqlite:///{tmp_path / 'telemetry.sqlite3'}"


@pytest.fixture
def postgresql_database():
    """A database of its own on the test suite's PostgreSQL server, dropped afterwards."""
    server = connection.settings_dict
    name = f"{server['TEST']['NAME'] or 'test_' + server['NAME']}_migration"  # this suite's own
    address = f"postgres://{server['USER']}@{server['HOST'] or '127.0.0.1'}:{server['PORT'] or 5432}"
    with psycopg.connect(f"{address}/postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')
    yield f"{address}/{name}"
    with psycopg.connect(f"{address}/postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.parametrize("database", ["sqlite_database", "postgresql_database"])
def test_heartbeats_are_carried_over_rolled_up_charted_and_purged(request, database):
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")} | {
        "DJANGO_SETTINGS_MODULE": "config.settings.local",
        "DATABASE_URL": request.getfixturevalue(database),
        "DJANGO_LOG_LEVEL": "ERROR",
    }
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    answer = json.loads(result.stdout.splitlines()[-1])
    assert answer["carried_over"] == 181
    assert answer["partitioned"] == (database == "postgresql_database")
    assert answer["deleted"] == 1  # the heartbeat of 31 days ago
    # Without rollups (no beat task) every range reads the raw heartbeats of its three hours.
    # (Buckets start at round instants: the three hours may begin in the middle of one.)
    before = answer["before_rollups"]
    allowed = {"24h": (36, 37), "7d": (3, 4), "30d": (1, 2), "1y": (1,)}
    assert all(before[key] in counts for key, counts in allowed.items()), before
    assert answer["hour"] == answer["raw_hour"]
    assert answer["minutes"] >= 170  # every closed minute of the three hours
    counted = {key: points for key, (points, _) in answer["after_rollups"].items()}
    assert counted == answer["before_rollups"]
    for key, (_, seconds) in answer["after_rollups"].items():
        assert 3 * 3600 - 300 <= seconds <= 3 * 3600 + 120, key  # three hours up, whatever the source
