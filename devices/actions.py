"""The device lifecycle rules other than the claim (see claims.py): each one function,
called alike by the portal views, the admin, the device API, the CLI and the tasks."""

from datetime import timedelta

from django.db import connection, transaction
from django.utils import timezone

from accounts.audit import record_audit
from accounts.models import AuditEntry
from portal.errors import UserFacingError
from vendors.models import VendorAuditEntry

from .history import record_change
from .models import Device, DeviceEvent

REACTIVATION_WINDOW = timedelta(hours=24)


class DeviceActionError(UserFacingError):
    """A lifecycle rule refused the action."""


def rename_device(device, *, name, actor):
    """Give a claimed device a new customer-facing name, recorded in its history."""
    name = name.strip()
    if not name:
        raise DeviceActionError("A device needs a name.")
    if name == device.name:
        return device
    with transaction.atomic():
        old = device.name
        device.name = name
        device.save(update_fields=["name"])
        record_change(
            device,
            DeviceEvent.Kind.RENAMED,
            actor=actor,
            audit_action=AuditEntry.Action.DEVICE_RENAMED,
            details={"from": old, "to": name},
        )
    return device


def move_device(device, *, space, actor):
    """Move a claimed device to another space of the same organization, recorded in its history.

    Moving to another organization is not a move: the device must be released (its history
    deleted) and claimed again.
    """
    if space.organization_id != device.organization_id:
        raise DeviceActionError("A device can only move between spaces of its own organization.")
    if space.pk == device.space_id:
        return device
    with transaction.atomic():
        locked = Device.objects.select_for_update().get(pk=device.pk)
        previous = locked.space
        locked.space = space
        locked.save(update_fields=["space"])
        record_change(
            locked,
            DeviceEvent.Kind.MOVED,
            actor=actor,
            audit_action=AuditEntry.Action.DEVICE_MOVED,
            details={"from": previous.name, "to": space.name},
            space=space,
        )
    device.space = space
    return device


def release_device(device, *, actor, reason=""):
    """Release a claimed device so that any organization can claim it again.

    Deletes the device's whole history (events, telemetry, commands, configuration) in one
    transaction; the device goes back to registered, or to unregistered if it never connected.
    Its key stays valid: the unit itself has not changed hands on the network, only its owner.
    The vendor's audit log records the release, with `reason` when vendor staff force it
    (see VendorAuditEntry).
    """
    with transaction.atomic():
        locked = (
            Device.objects.select_for_update(of=("self",)).select_related("identity", "device_model").get(pk=device.pk)
        )
        if locked.status != Device.Status.CLAIMED:
            return locked
        # The audit log is the organization's record, not the device's history: it keeps the release.
        record_audit(
            organization_id=locked.organization_id,
            actor=actor,
            action=AuditEntry.Action.DEVICE_RELEASED,
            target=locked.name,
            details={"space": locked.space.name, "device": str(locked.code)},
        )
        VendorAuditEntry.record_release(locked, actor=actor, reason=reason)
        # The whole history goes: events, telemetry, commands and configuration versions.
        for history in (locked.events, locked.heartbeats, locked.commands, locked.configuration_versions):
            history.all().delete()
        locked.applied_config_version = None
        locked.status = Device.Status.REGISTERED if locked.activated_at else Device.Status.UNREGISTERED
        locked.organization = None
        locked.space = None
        locked.name = ""
        locked.claimed_at = None
        locked.claimed_by = None
        locked.save()
    return locked


def record_activations(new_keys: dict, *, at=None, locked=False) -> list:
    """Mark devices activated with new keys: registered, or still claimed if they were claimed.

    `new_keys` maps each device to the hash of its new key. Replaces any previous key at once and
    writes an `activated` event for each. Pass `locked=True` when the caller already holds the
    devices' row locks in the current transaction (the activation task does, through
    Device.objects.create_or_lock), which spares re-reading the rows. Returns the devices, updated.
    """
    at = at or timezone.now()
    with transaction.atomic(savepoint=False):
        if not locked:
            fresh = Device.objects.select_for_update().in_bulk([device.pk for device in new_keys])
            new_keys = {fresh[device.pk]: key_hash for device, key_hash in new_keys.items()}
        for device, key_hash in new_keys.items():
            device.key_hash = key_hash
            device.reactivation_allowed_until = None
            device.activated_at = device.last_seen_at = at
            if device.status == Device.Status.UNREGISTERED:
                device.status = Device.Status.REGISTERED
        # Plain SQL, one statement of each kind for the whole batch (pipelined on PostgreSQL): every
        # activation of a burst comes here, and the ORM took longer to build them than to run them.
        when = connection.ops.adapt_datetimefield_value(at)
        with connection.cursor() as cursor:
            cursor.executemany(
                f"UPDATE {Device._meta.db_table} SET key_hash = %s, reactivation_allowed_until = NULL,"  # noqa: S608
                " activated_at = %s, last_seen_at = %s, status = %s WHERE id = %s",
                [[device.key_hash, when, when, device.status, device.pk] for device in new_keys],
            )
            cursor.executemany(
                f"INSERT INTO {DeviceEvent._meta.db_table} (device_id, kind, details, created_at)"  # noqa: S608
                " VALUES (%s, %s, '{}', %s)",
                [[device.pk, DeviceEvent.Kind.ACTIVATED, when] for device in new_keys],
            )
    return list(new_keys)


def allow_reactivation(device, *, actor, now=None):
    """Open a 24-hour window in which the unit may activate again (after a factory reset).

    Pressed by the owner (admin or owner role) or, for an unclaimed device, by vendor staff.
    A successful re-activation replaces the key; until then the old key keeps working.
    """
    now = now or timezone.now()
    with transaction.atomic():
        locked = Device.objects.select_for_update().get(pk=device.pk)
        locked.reactivation_allowed_until = now + REACTIVATION_WINDOW
        locked.save(update_fields=["reactivation_allowed_until"])
        if locked.status == Device.Status.CLAIMED:
            DeviceEvent.objects.create(
                device=locked, kind=DeviceEvent.Kind.REACTIVATION_ALLOWED, actor=actor, created_at=now
            )
    return locked


def move_devices(devices, *, space, actor):
    """Move several devices of one organization to `space`, all or none; returns how many moved."""
    with transaction.atomic():
        for device in devices:
            move_device(device, space=space, actor=actor)
    return len(devices)
