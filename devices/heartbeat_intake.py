"""Batched heartbeat intake: the device API appends each heartbeat to a Redis stream, and a writer
stores them in batches, one transaction per batch.

A heartbeat request then costs one read (is the key still the device's, what waits for it) and one
XADD, instead of two write transactions of its own. The writer (write_buffered_heartbeats, run by
the Celery task devices.tasks.write_buffered_heartbeats_task every second) reads the stream with a
consumer group and, per batch, in one transaction: COPYs it into a temporary table, locks the
devices, INSERTs the heartbeats of devices still held by the claim (and key) each heartbeat came
under, marks the devices seen and online and writes the back-online and config.applied events as a
heartbeat written directly does (telemetry.record_heartbeat). Entries are acknowledged only after
the commit: a writer killed mid-batch leaves them pending, and the next writer claims them once
they have been idle for RECLAIM_IDLE_MS. Writing a batch twice is harmless: a heartbeat row is
unique per device and time (ON CONFLICT DO NOTHING), and a device is marked seen only by a
heartbeat newer than its last_seen_at.

The stream has no length cap (a cap would drop accepted heartbeats): past MAX_BACKLOG entries the
request writes its heartbeat directly instead (slower, never lost) and the writer logs a warning,
the signal that writers are missing. Plain SQL, in this one place: it runs for every heartbeat.
"""

import functools
import json
import logging
import os
import socket
import threading
import time
from datetime import UTC, datetime

import redis
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from portal.redis import redis_client, redis_key
from webhooks.models import EventName
from webhooks.outbox import record_device_events

from .models import Command, ConfigurationVersion, Device, DeviceEvent, Heartbeat

logger = logging.getLogger(__name__)

STREAM = "heartbeats:intake"
GROUP = "writers"
BATCH = 2_000
# A pending entry idle this long belongs to a writer that died (a live one finishes a batch in
# well under a second): the next writer takes it over.
RECLAIM_IDLE_MS = 15_000
# Beyond this many entries waiting, requests write their heartbeat directly (see the module docstring).
MAX_BACKLOG = 1_000_000
# One round trip: append unless the backlog is full (then nil, and the caller writes directly).
APPEND_UNLESS_FULL = """
if redis.call('XLEN', KEYS[1]) >= tonumber(ARGV[1]) then return false end
return redis.call('XADD', KEYS[1], '*', unpack(ARGV, 2))
"""


def batching_enabled():
    """Heartbeats go through the stream when Redis is configured on PostgreSQL (HEARTBEAT_BATCHING);
    the embedded default (SQLite, no Redis) writes them directly."""
    return settings.HEARTBEAT_BATCHING and redis_client() is not None


def written_until(now):
    """The moment up to which every heartbeat accepted is in the database: `now`, less the age of
    the oldest entry still waiting in the stream (its id is Redis's clock at its arrival). The
    connectivity sweep judges silence as of then, so writers running behind (or none running) do
    not make devices that keep sending look offline. `now` when batching is off or Redis cannot
    say: heartbeats are then written by their requests."""
    if not batching_enabled():
        return now
    try:
        oldest = redis_client().xrange(redis_key(STREAM), count=1)
    except redis.RedisError:
        return now
    if not oldest:
        return now
    entry_id = oldest[0][0].decode() if isinstance(oldest[0][0], bytes) else oldest[0][0]
    arrived_ms = int(entry_id.split("-")[0])
    return min(now, datetime.fromtimestamp(arrived_ms / 1000, tz=UTC))


def waiting_columns():
    """The columns (SQL over the device row `d`, and their parameters) of what waits for a device
    and the claim it is under, for a SELECT of the device to add: authentication reads them with
    the key for the heartbeat (authenticate_device(with_waiting=True)), read_waiting alone."""
    sql = f"""d.status, d.claimed_at,
        EXISTS (SELECT 1 FROM {Command._meta.db_table}
                WHERE device_id = d.id AND status IN (%s, %s) AND expires_at > %s),
        COALESCE((SELECT version FROM {ConfigurationVersion._meta.db_table}
                  WHERE device_id = d.id ORDER BY version DESC LIMIT 1), 0)"""  # noqa: S608
    return sql, [*Command.PENDING, timezone.now()]


def waiting_from(columns):
    """What waits, from the values of waiting_columns(): {"claimed_at" (None unless claimed),
    "commands_pending", "config_version"}."""
    status, claimed_at, commands_pending, desired_version = columns
    return {
        "claimed_at": claimed_at if status == Device.Status.CLAIMED else None,
        "commands_pending": bool(commands_pending),
        "config_version": desired_version,
    }


def read_waiting(device):
    """What waits for `device` (see waiting_from), read without writing anything, or None if the
    device no longer has the key it authenticated with (a reset or release committed since)."""
    columns, params = waiting_columns()
    sql = f"SELECT {columns} FROM {Device._meta.db_table} d WHERE d.id = %s AND d.key_hash = %s"  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, device.pk, device.key_hash])
        row = cursor.fetchone()
    return None if row is None else waiting_from(row)


def append_heartbeat(device, *, claimed_at, received_at, metrics, config_version):
    """Append one heartbeat to the stream; False when the backlog is full (the caller writes it
    directly). Raises redis.RedisError when Redis cannot take it."""
    fields = {
        "device": device.pk,
        "key": device.key_hash,
        "claimed_at": claimed_at.isoformat() if claimed_at else "",
        "received_at": received_at.isoformat(),
        "metrics": json.dumps(metrics, separators=(",", ":")),
        "config_version": "" if config_version is None else config_version,
    }
    args = [MAX_BACKLOG]
    for name, value in fields.items():
        args += [name, value]
    return _append_script(redis_client())(keys=[redis_key(STREAM)], args=args) is not None


@functools.cache
def _append_script(client):
    return client.register_script(APPEND_UNLESS_FULL)


def write_buffered_heartbeats(*, seconds=1.0, reclaim_idle_ms=RECLAIM_IDLE_MS, batch=BATCH, pause=0.0):
    """Write what waits in the stream, batch by batch, for about `seconds` at most; returns how many
    entries were handled. Entries left pending by a writer that died are taken over first. Call it
    outside any transaction: each batch commits, then acknowledges.

    A read that finds less than a full batch has caught up: it then returns, or with `pause` reads
    again that many seconds later, while `seconds` last and reads find something. Not at once:
    under a steady flow the stream is never empty for long, and chasing the last few entries would
    write a stream of tiny transactions, each with its own commit, several times the database's
    work per heartbeat. What arrives meanwhile is written as one batch.

    Tests call it directly to write what their heartbeats buffered (with reclaim_idle_ms=0 to take
    over the entries of a writer they killed)."""
    client = redis_client()
    stream = redis_key(STREAM)
    consumer = f"{socket.gethostname()}-{os.getpid()}-{threading.get_ident()}"
    _ensure_group(client, stream)
    backlog = client.xlen(stream)
    if backlog > MAX_BACKLOG // 2:
        logger.warning("%d heartbeats wait in the intake stream: start more telemetry workers", backlog)
    deadline = time.monotonic() + seconds
    handled = 0
    reclaim_from = "0-0"
    while True:
        entries, caught_up = [], False
        if reclaim_from is not None:
            reclaim_from, entries, _ = client.xautoclaim(
                stream, GROUP, consumer, min_idle_time=reclaim_idle_ms, start_id=reclaim_from, count=batch
            )
            reclaim_from = None if reclaim_from in (b"0-0", "0-0") else reclaim_from
        if not entries and reclaim_from is None:
            answer = client.xreadgroup(GROUP, consumer, {stream: ">"}, count=batch)
            entries = answer[0][1] if answer else []
            caught_up = len(entries) < batch
        entries = [(entry_id, fields) for entry_id, fields in entries if fields]
        if entries:
            write_batch([row for row in map(_parse, entries) if row is not None])
            ids = [entry_id for entry_id, _ in entries]
            with client.pipeline() as pipe:
                pipe.xack(stream, GROUP, *ids)
                pipe.xdel(stream, *ids)
                pipe.execute()
            handled += len(entries)
        # An empty read: nothing is flowing, the next run comes soon enough.
        if caught_up and (not pause or not entries or time.monotonic() + pause > deadline):
            _forget_idle_consumers(client, stream)
            return handled
        if time.monotonic() > deadline:
            return handled
        if caught_up:
            time.sleep(pause)


def _ensure_group(client, stream):
    try:
        client.xgroup_create(stream, GROUP, id="0", mkstream=True)
    except redis.ResponseError as error:
        if "BUSYGROUP" not in str(error):
            raise


def _parse(entry):
    """The row of one stream entry, or None (logged) for one no request wrote: it would otherwise
    fail its batch again at every attempt and hold up every heartbeat behind it."""
    entry_id, fields = entry
    try:
        fields = {key.decode(): value.decode() for key, value in fields.items()}
        return (
            int(fields["device"]),
            fields["key"],
            datetime.fromisoformat(fields["claimed_at"]) if fields["claimed_at"] else None,
            datetime.fromisoformat(fields["received_at"]),
            _valid_json(fields["metrics"]),
            int(fields["config_version"]) if fields["config_version"] else None,
        )
    except (KeyError, ValueError, UnicodeDecodeError) as error:
        logger.error("Dropping malformed heartbeat stream entry %s: %r", entry_id, error)
        return None


def _valid_json(text):
    json.loads(text)
    return text


def _forget_idle_consumers(client, stream):
    """Remove the consumers that hold nothing and have been idle for ten minutes (writers that
    stopped): each writer thread reads under a name of its own, and the group would keep them all."""
    for consumer in client.xinfo_consumers(stream, GROUP):
        if consumer["pending"] == 0 and consumer["idle"] > 600_000:
            client.xgroup_delconsumer(stream, GROUP, consumer["name"])


STAGING = "heartbeat_intake"


def write_batch(rows):
    """Store one batch of buffered heartbeats (device id, key hash, claimed_at, received_at,
    metrics as JSON, config version) in one transaction; see the module docstring."""
    devices, heartbeats = Device._meta.db_table, Heartbeat._meta.db_table
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            f"""CREATE TEMPORARY TABLE IF NOT EXISTS {STAGING} (device_id bigint, key_hash text,
                claimed_at timestamptz, received_at timestamptz, metrics jsonb, config_version integer)
                ON COMMIT DELETE ROWS"""
        )
        # Empty already after each commit (ON COMMIT DELETE ROWS); a DELETE, not a TRUNCATE, for a
        # batch written inside an outer transaction (tests): TRUNCATE would replace its file each time.
        cursor.execute(f"DELETE FROM {STAGING}")  # noqa: S608
        with cursor.cursor.copy(f"COPY {STAGING} FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        # Lock the devices first, in one order (two writers never deadlock): a release that commits
        # before this is seen by the statements below; one that comes after waits for this commit and
        # then deletes what it wrote with the rest of the history.
        cursor.execute(
            f"SELECT id FROM {devices} WHERE id IN (SELECT device_id FROM {STAGING}) ORDER BY id FOR NO KEY UPDATE"  # noqa: S608
        )
        # Only under the claim (and key) the heartbeat came with: a release or a new claim since
        # discards the previous holder's heartbeats, as telemetry._insert_while_claimed does.
        cursor.execute(
            f"""INSERT INTO {heartbeats} (device_id, received_at, metrics)
                SELECT s.device_id, s.received_at, s.metrics FROM {STAGING} s
                JOIN {devices} d ON d.id = s.device_id AND d.status = %s AND d.claimed_at = s.claimed_at
                                    AND d.key_hash = s.key_hash
                ON CONFLICT (device_id, received_at) DO NOTHING""",  # noqa: S608
            [Device.Status.CLAIMED],
        )
        # Seen, online and the applied version as of each device's latest heartbeat, if newer than
        # what the device holds (an entry written twice, or a late one, changes nothing).
        cursor.execute(
            f"""WITH latest AS (
                    SELECT device_id, key_hash, max(received_at) AS seen_at,
                           (array_agg(config_version ORDER BY received_at DESC)
                                FILTER (WHERE config_version IS NOT NULL))[1] AS version
                    FROM {STAGING} GROUP BY device_id, key_hash
                ), previous AS (
                    SELECT d.id, d.online, d.applied_config_version, d.status, l.seen_at, l.version
                    FROM {devices} d JOIN latest l ON l.device_id = d.id AND l.key_hash = d.key_hash
                    WHERE d.last_seen_at IS NULL OR d.last_seen_at < l.seen_at
                )
                UPDATE {devices} d SET last_seen_at = p.seen_at, online = true,
                    applied_config_version = COALESCE(p.version, d.applied_config_version)
                FROM previous p WHERE d.id = p.id
                RETURNING d.id, p.status = %s, p.online, p.applied_config_version, p.version, p.seen_at""",  # noqa: S608
            [Device.Status.CLAIMED],
        )
        changed = cursor.fetchall()
        _record_events(changed)
    return len(rows)


def _record_events(changed):
    """Back-online and config.applied for the claimed devices the batch changed, as a direct write
    records them (telemetry.record_heartbeat): one set-based call per event (and version), dated by
    the latest heartbeat among them. A device that reports two new versions within one batch (a
    second or two) gets config.applied for the last one only."""
    came_back = [(pk, seen_at) for pk, claimed, online, _, _, seen_at in changed if claimed and not online]
    if came_back:
        DeviceEvent.objects.bulk_create(
            DeviceEvent(device_id=pk, kind=DeviceEvent.Kind.BACK_ONLINE, details={}, created_at=seen_at)
            for pk, seen_at in came_back
        )
        record_device_events(
            EventName.DEVICE_ONLINE,
            Device.objects.filter(pk__in=[pk for pk, _ in came_back]),
            occurred_at=max(seen_at for _, seen_at in came_back),
        )
    applied = {}
    for pk, claimed, _, before, version, seen_at in changed:
        # Version 0 is no configuration at all: nothing was applied.
        if claimed and version and version != before:
            applied.setdefault(version, []).append((pk, seen_at))
    for version, devices in applied.items():
        record_device_events(
            EventName.CONFIG_APPLIED,
            Device.objects.filter(pk__in=[pk for pk, _ in devices]),
            occurred_at=max(seen_at for _, seen_at in devices),
            extra={"config_version": version},
        )
