"""The heartbeat table's retention: daily partitions on PostgreSQL, a DELETE on SQLite.

On PostgreSQL devices_heartbeat is partitioned by range of received_at (migration 0011): one
partition per UTC day, named devices_heartbeat_pYYYYMMDD, and a DEFAULT partition that takes any
heartbeat whose day has no partition yet (after `migrate` alone, or when the beat task stopped).
maintain_heartbeat_partitions keeps the days from the retention's start to a few days ahead
partitioned and drops whole partitions past the retention, so that the purge costs a catalog
change, not a DELETE of a day of the fleet's rows. The SQL of it lives here and nowhere else.
"""

import logging
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from .models import Heartbeat

logger = logging.getLogger(__name__)

PARENT = Heartbeat._meta.db_table
DEFAULT_PARTITION = f"{PARENT}_default"
PARTITION_NAME = re.compile(rf"{PARENT}_p(\d{{8}})")
# A partition is created or dropped under a brief lock of the parent or the default partition: it
# waits this long for queries holding them, then gives up until the next run rather than queue
# every heartbeat behind it.
LOCK_TIMEOUT = "5s"


@dataclass
class PartitionMaintenance:
    """What one run did: days partitioned and dropped, rows moved out of the default partition,
    rows deleted (past the retention, from the default partition or, on SQLite, the table)."""

    created: list[date] = field(default_factory=list)
    dropped: list[date] = field(default_factory=list)
    moved: int = 0
    deleted: int = 0


def retention_start(now):
    """The oldest instant whose heartbeats are kept."""
    return now - timedelta(days=settings.HEARTBEAT_RETENTION_DAYS)


def maintain_heartbeat_partitions(now=None):
    """Partition every day from the retention's start to HEARTBEAT_PARTITIONS_AHEAD_DAYS ahead,
    and drop the partitions wholly past the retention; returns a PartitionMaintenance.

    Idempotent: a day already partitioned is left alone, and a run that could not take a lock
    leaves its day for the next one. Heartbeats of a day that reached the default partition before
    the day had its own are moved into it with its creation, in one transaction. Past-retention
    rows left in the default partition are deleted (few: only what landed there). On SQLite, which
    has no partitions, the heartbeats past the retention are deleted.
    """
    now = now or timezone.now()
    cutoff = retention_start(now)
    done = PartitionMaintenance()
    if connection.vendor != "postgresql":
        done.deleted, _ = Heartbeat.objects.filter(received_at__lt=cutoff).delete()
        return done
    existing = partitioned_days()
    last = now.astimezone(UTC).date() + timedelta(days=settings.HEARTBEAT_PARTITIONS_AHEAD_DAYS)
    for day in days_between(cutoff.astimezone(UTC).date(), last):
        if day not in existing:
            moved = _try(create_partition, day)
            if moved is not None:
                done.created.append(day)
                done.moved += moved
    for day in sorted(existing):
        if day_start(day + timedelta(days=1)) <= cutoff and _try(drop_partition, day) is not None:
            done.dropped.append(day)
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {DEFAULT_PARTITION} WHERE received_at < %s", [cutoff])  # noqa: S608
        done.deleted = cursor.rowcount
    return done


def partitioned_days():
    """The days that have a partition of their own, from the catalog (pg_inherits)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " WHERE i.inhparent = %s::regclass",
            [PARENT],
        )
        names = [name for (name,) in cursor.fetchall()]
    return {datetime.strptime(match[1], "%Y%m%d").date() for name in names if (match := PARTITION_NAME.fullmatch(name))}


def create_partition(day):
    """Create the partition of `day`, moving into it the day's heartbeats that the default partition
    took meanwhile; returns how many were moved.

    The table is filled, then attached, in one transaction holding the default partition: no
    heartbeat of the day can land there between the move and the attachment (which would refuse).
    Attaching takes a lighter lock of the parent than CREATE TABLE ... PARTITION OF would: the
    heartbeats of other days keep arriving meanwhile.
    """
    name, low, high = partition_name(day), day_start(day), day_start(day + timedelta(days=1))
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
        cursor.execute(f"LOCK TABLE {DEFAULT_PARTITION} IN ACCESS EXCLUSIVE MODE")
        cursor.execute(f"CREATE TABLE {name} (LIKE {PARENT} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)")
        cursor.execute(
            f"""WITH moved AS (DELETE FROM {DEFAULT_PARTITION} WHERE received_at >= %s AND received_at < %s
                               RETURNING device_id, received_at, metrics)
                INSERT INTO {name} (device_id, received_at, metrics) SELECT * FROM moved""",  # noqa: S608
            [low, high],
        )
        moved = cursor.rowcount
        # Bounds written out, not bound: DDL takes no parameters when the driver binds server-side.
        bounds = f"FROM ('{low.isoformat()}') TO ('{high.isoformat()}')"
        cursor.execute(f"ALTER TABLE {PARENT} ATTACH PARTITION {name} FOR VALUES {bounds}")
    return moved


def drop_partition(day):
    """Drop the partition of `day`, its heartbeats with it."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
        cursor.execute(f"DROP TABLE IF EXISTS {partition_name(day)}")
    return day


def _try(operation, day):
    """`operation(day)`, or None (logged) when a lock was not granted in time: the next run retries."""
    try:
        return operation(day)
    except DatabaseError as error:
        logger.warning(
            "heartbeat partition of %s: %s failed, left for the next run: %s", day, operation.__name__, error
        )
        return None


def partition_name(day):
    return f"{PARENT}_p{day:%Y%m%d}"


def day_start(day):
    return datetime.combine(day, time(), tzinfo=UTC)


def days_between(first, last):
    """Every day from `first` to `last`, both included."""
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]
