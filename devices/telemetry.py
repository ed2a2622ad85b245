"""Heartbeats and connectivity: intake, last seen, online and offline."""

import logging
from contextlib import nullcontext

import redis
from django.db import connection, transaction
from django.utils import timezone

from vendors.models import DeviceModel
from webhooks.models import EventName
from webhooks.outbox import record_device_events

from . import heartbeat_intake
from .models import Command, ConfigurationVersion, Device, DeviceEvent, Heartbeat

logger = logging.getLogger(__name__)

# Devices the connectivity sweep marks per transaction: one statement's parameters stay well under
# PostgreSQL's limit of 65,535 when a whole fleet goes offline at once.
SWEEP_BATCH = 5_000
# Seconds the intake stream's oldest heartbeat may wait for its writer before the sweep says so.
WRITERS_BEHIND_WARNING = 30


def record_heartbeat(device, *, metrics, config_version=None, now=None, waiting=None):
    """Record a heartbeat of an authenticated device and say what waits for it.

    Updates last_seen_at (and the applied configuration version it reports), keeps the metrics
    of a claimed device for the monitoring chart (an unclaimed device's show nowhere, so they are
    not kept), and writes a back-online event when the device had been marked offline; the webhooks'
    device.online then, and config.applied for a configuration version it had not reported before.
    Returns {"commands_pending": bool, "config_version": desired version}, or None when the key
    `device` was authenticated by was revoked meanwhile (the caller answers as to a wrong key).

    With Redis on PostgreSQL (heartbeat_intake.batching_enabled) the heartbeat is only appended to
    the intake stream here, after reading what waits (unless the caller's authentication read it:
    `waiting`, see authenticate_device(with_waiting=True)); the writer (heartbeat_intake.write_buffered_heartbeats)
    does all of the above within seconds, for a whole batch at once. Without Redis, when Redis
    cannot take it, or when the stream's backlog is full, it is written directly, as one request.
    """
    now = now or timezone.now()
    if heartbeat_intake.batching_enabled():
        waiting = dict(waiting) if waiting is not None else heartbeat_intake.read_waiting(device)
        if waiting is None:
            return None
        claimed_at = waiting.pop("claimed_at")
        try:
            appended = heartbeat_intake.append_heartbeat(
                device, claimed_at=claimed_at, received_at=now, metrics=metrics, config_version=config_version
            )
        except redis.RedisError as error:
            logger.warning("Heartbeat written directly, the intake stream is unreachable: %s", error)
            appended = False
        if appended:
            return waiting
    return _write_heartbeat(device, metrics=metrics, config_version=config_version, now=now)


def _write_heartbeat(device, *, metrics, config_version, now):
    """record_heartbeat's direct write: two independent statements for the common heartbeat."""
    came_back = not device.online
    # Version 0 is no configuration at all: nothing was applied.
    applied = bool(config_version) and config_version != device.applied_config_version
    # The common heartbeat is two independent writes, each its own statement; only a device coming
    # back online (or applying a configuration) needs its flag and its events written together.
    with transaction.atomic() if came_back or applied else nullcontext():
        waiting = _mark_seen(device, now, config_version)
        if waiting is None:
            return None
        if device.status == Device.Status.CLAIMED:
            _insert_while_claimed(Heartbeat, device, received_at=now, metrics=metrics)
            if came_back:
                _insert_while_claimed(
                    DeviceEvent, device, kind=DeviceEvent.Kind.BACK_ONLINE, details={}, created_at=now
                )
                record_device_events(EventName.DEVICE_ONLINE, [device], occurred_at=now)
            if applied:
                record_device_events(
                    EventName.CONFIG_APPLIED, [device], occurred_at=now, extra={"config_version": config_version}
                )
    device.last_seen_at, device.online = now, True
    if config_version is not None:
        device.applied_config_version = config_version
    return waiting


def _mark_seen(device, now, config_version):
    """Mark the device seen (and online, with the configuration version it reports) and read what
    waits for it: {"commands_pending": bool, "config_version": desired version}, in one statement;
    None if the device no longer has the key it authenticated with.

    The key is checked again in the UPDATE itself: a release or key reset that committed after the
    authentication, or holds the row now (the UPDATE waits for it, then reads the emptied key),
    leaves the row unchanged, so an old key cannot mark the device online or read what waits for it.

    Plain SQL on purpose: this runs on every heartbeat of every device, and building the same
    statement with the ORM (Exists, Subquery, Coalesce) costs many times its execution.
    """
    applied = ", applied_config_version = %s" if config_version is not None else ""
    sql = f"""
        UPDATE {Device._meta.db_table} SET last_seen_at = %s, online = %s{applied} WHERE id = %s AND key_hash = %s
        RETURNING
            EXISTS (SELECT 1 FROM {Command._meta.db_table}
                    WHERE device_id = %s AND status IN (%s, %s) AND expires_at > %s),
            COALESCE((SELECT version FROM {ConfigurationVersion._meta.db_table}
                      WHERE device_id = %s ORDER BY version DESC LIMIT 1), 0)
    """  # noqa: S608 - table names are the models', values are parameters
    when = connection.ops.adapt_datetimefield_value(now)
    params = [when, True, *([config_version] if config_version is not None else []), device.pk, device.key_hash]
    params += [device.pk, *Command.PENDING, when, device.pk]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    if row is None:
        return None
    commands_pending, desired_version = row
    return {"commands_pending": bool(commands_pending), "config_version": desired_version}


def _insert_while_claimed(model, device, **values):
    """INSERT a history row of `model` for `device` if the device is still claimed when the
    statement runs: the device read at authentication may have been released since, and its new
    owner must not inherit the previous one's data.

    The check reads the device row with FOR SHARE: a release that holds the row makes this wait
    and then find the device released; a release that comes after waits for this, then deletes the
    row with the rest of the history. Plain SQL, as _mark_seen: it runs on every heartbeat.
    """
    meta = model._meta
    values = {"device": device.pk, **values}
    fields = [meta.get_field(name) for name in values]
    prepared = [field.get_db_prep_save(value, connection) for field, value in zip(fields, values.values(), strict=True)]
    lock = " FOR SHARE" if connection.features.has_select_for_update else ""
    sql = f"""
        INSERT INTO {meta.db_table} ({", ".join(field.column for field in fields)})
        SELECT {", ".join(["%s"] * len(fields))} FROM {Device._meta.db_table} WHERE id = %s AND status = %s{lock}
    """  # noqa: S608 - table and column names are the models', values are parameters
    with connection.cursor() as cursor:
        cursor.execute(sql, [*prepared, device.pk, Device.Status.CLAIMED])


def record_connectivity_changes(now=None):
    """Mark devices offline whose last heartbeat is older than Device.offline_after, with a
    went-offline event for claimed ones. Set-based, per device model in batches of SWEEP_BATCH.
    Silence is judged as of the moment every heartbeat accepted has been written
    (heartbeat_intake.written_until): a backlog in the intake stream delays the sweep, it does not
    mark the fleet offline."""
    now = now or timezone.now()
    written = heartbeat_intake.written_until(now)
    if (behind := (now - written).total_seconds()) > WRITERS_BEHIND_WARNING:
        logger.warning("Heartbeats are written %.0f s behind: start more telemetry workers", behind)
    marked = 0
    for model_id, interval in DeviceModel.objects.values_list("pk", "heartbeat_interval"):
        stale = Device.objects.filter(
            device_model_id=model_id, online=True, last_seen_at__lt=written - Device.offline_after(interval)
        )
        while batch := _mark_offline(stale, now):
            marked += batch
    return marked


def _mark_offline(stale, now):
    """Mark one batch of `stale` offline, with its events; returns how many (0: none left)."""
    with transaction.atomic():
        rows = list(stale.select_for_update(skip_locked=True).values_list("pk", "status")[:SWEEP_BATCH])
        if rows:
            Device.objects.filter(pk__in=[pk for pk, _ in rows]).update(online=False)
            claimed = [pk for pk, status in rows if status == Device.Status.CLAIMED]
            DeviceEvent.objects.bulk_create(
                DeviceEvent(device_id=pk, kind=DeviceEvent.Kind.WENT_OFFLINE, created_at=now) for pk in claimed
            )
            record_device_events(EventName.DEVICE_OFFLINE, Device.objects.filter(pk__in=claimed), occurred_at=now)
    return len(rows)
