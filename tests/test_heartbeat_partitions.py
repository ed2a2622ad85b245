"""The heartbeat table's daily partitions on PostgreSQL: created ahead, dropped past the retention,
and the default partition that takes heartbeats before any exists (the catalog is pg_inherits)."""

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection

from devices.actions import release_device
from devices.heartbeat_partitions import DEFAULT_PARTITION, PARENT, maintain_heartbeat_partitions, partition_name
from devices.models import Heartbeat, MetricRollup
from devices.rollups import roll_up_heartbeats

from .factories import ClaimedDeviceFactory, HeartbeatFactory

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 6, 15, 12, 30, tzinfo=UTC)


def partitions():
    """The names of the heartbeat table's partitions, from the catalog."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " WHERE i.inhparent = %s::regclass ORDER BY 1",
            [PARENT],
        )
        return [name for (name,) in cursor.fetchall()]


def table_of(heartbeat):
    """The partition that holds `heartbeat`."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT tableoid::regclass::text FROM {PARENT} WHERE device_id = %s AND received_at = %s",  # noqa: S608
            [heartbeat.device_id, heartbeat.received_at],
        )
        return cursor.fetchone()[0]


def day(offset):
    return (NOW + timedelta(days=offset)).date()


def test_after_migrate_alone_the_table_is_partitioned_and_the_default_partition_takes_a_heartbeat():
    assert partitions() == [DEFAULT_PARTITION]
    heartbeat = HeartbeatFactory(received_at=NOW)
    assert table_of(heartbeat) == DEFAULT_PARTITION
    assert Heartbeat.objects.get(device=heartbeat.device).metrics == {"cpu": 10.0}


def test_partitions_are_created_from_the_retention_start_to_a_week_ahead(settings):
    done = maintain_heartbeat_partitions(NOW)
    expected = {partition_name(day(offset)) for offset in range(-30, 8)}
    assert set(partitions()) == expected | {DEFAULT_PARTITION}
    assert done.created == [day(offset) for offset in range(-30, 8)]
    assert maintain_heartbeat_partitions(NOW).created == []  # idempotent


def test_a_heartbeat_goes_to_its_days_partition_once_it_exists():
    maintain_heartbeat_partitions(NOW)
    assert table_of(HeartbeatFactory(received_at=NOW + timedelta(days=3))) == partition_name(day(3))


def test_heartbeats_the_default_partition_took_move_into_their_days_new_partition():
    early = [HeartbeatFactory(received_at=NOW - timedelta(hours=hours)) for hours in (1, 30)]
    assert {table_of(heartbeat) for heartbeat in early} == {DEFAULT_PARTITION}
    done = maintain_heartbeat_partitions(NOW)
    assert done.moved == 2
    assert [table_of(heartbeat) for heartbeat in early] == [partition_name(day(0)), partition_name(day(-1))]
    assert Heartbeat.objects.count() == 2


def test_partitions_past_the_retention_are_dropped_whole_with_their_rows(settings):
    settings.HEARTBEAT_RETENTION_DAYS = 30
    maintain_heartbeat_partitions(NOW - timedelta(days=10))  # partitions from 40 days ago
    old = HeartbeatFactory(received_at=NOW - timedelta(days=35))
    kept = HeartbeatFactory(received_at=NOW - timedelta(days=29), device=old.device)
    assert partition_name(day(-35)) in partitions()
    with connection.cursor() as cursor:  # as if committed: the test's transaction holds the rows' FK checks
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
    done = maintain_heartbeat_partitions(NOW)
    assert done.dropped == [day(offset) for offset in range(-40, -30)]
    assert partition_name(day(-35)) not in partitions()
    assert partition_name(day(-30)) in partitions()  # holds rows younger than 30 days
    assert list(Heartbeat.objects.values_list("received_at", flat=True)) == [kept.received_at]


def test_heartbeats_past_the_retention_left_in_the_default_partition_are_deleted():
    HeartbeatFactory(received_at=NOW - timedelta(days=31))
    assert maintain_heartbeat_partitions(NOW).deleted == 1
    assert not Heartbeat.objects.exists()


def test_a_release_deletes_the_devices_partitioned_heartbeats_and_rollups(owner, space):
    maintain_heartbeat_partitions(NOW)
    device = ClaimedDeviceFactory(space=space)
    other = HeartbeatFactory(received_at=NOW - timedelta(minutes=10))
    for minutes in range(3, 10):
        HeartbeatFactory(device=device, received_at=NOW - timedelta(minutes=minutes))
    roll_up_heartbeats(NOW)
    assert MetricRollup.objects.filter(device=device).exists()
    release_device(device, actor=owner)
    assert not Heartbeat.objects.filter(device=device).exists()
    assert not MetricRollup.objects.filter(device=device).exists()
    assert MetricRollup.objects.filter(device=other.device).exists()


def test_deleting_a_device_cascades_to_its_heartbeats_and_rollups():
    heartbeat = HeartbeatFactory(received_at=NOW - timedelta(minutes=5))
    roll_up_heartbeats(NOW)
    heartbeat.device.delete()
    assert not Heartbeat.objects.exists()
    assert not MetricRollup.objects.exists()


def test_a_heartbeat_written_twice_is_stored_once():
    heartbeat = HeartbeatFactory(received_at=NOW)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {PARENT} (device_id, received_at, metrics) VALUES (%s, %s, '{{}}') ON CONFLICT DO NOTHING",  # noqa: S608
            [heartbeat.device_id, heartbeat.received_at],
        )
    assert Heartbeat.objects.count() == 1
