"""The device lifecycle rules other than the claim (see claims.py): each one function,
called alike by the portal views, the admin, the device API, the CLI and the tasks."""

from datetime import timedelta

from django.db import connection, transaction
from django.utils import timezone

from accounts.audit import record_audit
from accounts.models import AuditEntry
from portal.errors import UserFacingError
from spaces.models import Space
from vendors.models import VendorAuditEntry
from webhooks.models import EventName
from webhooks.outbox import record_device_events

from .history import record_change
from .models import Device, DeviceEvent
from .signals import device_released

REACTIVATION_WINDOW = timedelta(hours=24)


class DeviceActionError(UserFacingError):
    """A lifecycle rule refused the action."""


def lock_claimed(device, *related, refusal=DeviceActionError):
    """Lock `device`'s row until the transaction ends and return it as it is now, provided it is
    still claimed by the organization the caller found it in (the caller's copy's): the guard of
    every rule on a claimed device, checked on the locked row. Raises `refusal` otherwise (the
    device was released meanwhile, and perhaps claimed by another organization since).

    `related` are select_related paths to read along: only relations that never change (identity,
    device_model). After waiting for the lock, PostgreSQL re-reads the device row but not the
    joined ones, so a space read along would be the one from before the wait, or none. Call it
    inside transaction.atomic().
    """
    rows = Device.objects.select_for_update(of=("self",))
    locked = (rows.select_related(*related) if related else rows).get(pk=device.pk)
    if locked.status != Device.Status.CLAIMED or locked.organization_id != device.organization_id:
        raise refusal("This device was released meanwhile and no longer belongs to this organization.")
    return locked


def lock_target_space(space, *, refusal=DeviceActionError):
    """Lock the space devices are about to move (or be claimed) to, against its deletion: deleting a
    space locks it before the devices it moves away, so every move and claim takes the space first,
    then the devices. Raises `refusal` for a space deleted meanwhile. Call it inside transaction.atomic()."""
    if Space.objects.select_for_update(no_key=True).filter(pk=space.pk).first() is None:
        raise refusal(f"The space “{space.name}” was deleted meanwhile.")


def lock_in_order(devices):
    """Lock the rows of `devices` in one statement, in the one order every rule that locks several
    devices follows (their identity's, as Device.objects.create_or_lock does for activation batches),
    so that two of them sharing devices wait for each other instead of deadlocking. Call it inside
    transaction.atomic()."""
    list(
        Device.objects.select_for_update()
        .filter(pk__in=[device.pk for device in devices])
        .order_by("identity_id")
        .values("pk")
    )


def rename_device(device, *, name, actor):
    """Give a claimed device a new customer-facing name, recorded in its history."""
    name = name.strip()
    if not name:
        raise DeviceActionError("A device needs a name.")
    with transaction.atomic():
        locked = lock_claimed(device)
        if name != locked.name:
            old = locked.name
            locked.name = name
            locked.save(update_fields=["name"])
            record_change(
                locked,
                DeviceEvent.Kind.RENAMED,
                actor=actor,
                audit_action=AuditEntry.Action.DEVICE_RENAMED,
                details={"from": old, "to": name},
            )
    device.name = name
    return device


def move_device(device, *, space, actor):
    """Move a claimed device to another space of the same organization, recorded in its history.

    Moving to another organization is not a move: the device must be released (its history
    deleted) and claimed again.
    """
    with transaction.atomic():
        lock_target_space(space)
        locked = lock_claimed(device)
        if space.organization_id != locked.organization_id:
            raise DeviceActionError("A device can only move between spaces of its own organization.")
        if space.pk != locked.space_id:
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
            record_device_events(EventName.DEVICE_MOVED, [locked])
    device.space = space
    return device


# What revoke_key changes, for callers that save only those fields.
REVOKED_KEY_FIELDS = ["key_hash", "key_issued_from", "reactivation_allowed_until"]


def revoke_key(device, *, now=None):
    """Take the key away from `device` (a locked row the caller saves): the hash the device API
    authenticates by is emptied, so the old key matches no device, and the re-activation window
    opens so the unit can activate again and receive a new key. The address the key was issued
    from goes with it: it said where the previous key holder's network was."""
    device.key_hash = ""
    device.key_issued_from = None
    device.reactivation_allowed_until = (now or timezone.now()) + REACTIVATION_WINDOW


def release_device(device, *, actor, reason=""):
    """Release a claimed device so that any organization can claim it again; refused if it was
    released meanwhile (see lock_claimed), so that nobody releases a device they no longer hold.

    Deletes the device's whole history (events, telemetry, commands, configuration) in one
    transaction and revokes its key (see revoke_key): from the commit on, every device API call
    with the old key gets 401, so a previous owner who kept a copy of it cannot follow the unit to
    its next owner; the unit may activate afresh within REACTIVATION_WINDOW. The device goes back
    to registered, or to unregistered if it never connected: the vendor's statuses say whether it
    ever registered with the server, Device.has_key whether it can reach it now. The vendor's audit
    log records the release, with `reason` when vendor staff force it (see VendorAuditEntry).
    Sends devices.signals.device_released in the transaction (release requests close with it).
    """
    with transaction.atomic():
        locked = lock_claimed(device, "identity", "device_model")
        record_device_events(EventName.DEVICE_RELEASED, [locked])
        # The audit log is the organization's record, not the device's history: it keeps the release.
        record_audit(
            organization_id=locked.organization_id,
            actor=actor,
            action=AuditEntry.Action.DEVICE_RELEASED,
            target=locked.name,
            details={"space": locked.space.name, "device": str(locked.code)},
        )
        VendorAuditEntry.record_release(locked, actor=actor, reason=reason)
        holder = locked.organization_id
        # The whole history goes: events, telemetry and its rollups, commands and configuration versions.
        histories = (
            locked.events,
            locked.heartbeats,
            locked.metric_rollups,
            locked.commands,
            locked.configuration_versions,
        )
        for history in histories:
            history.all().delete()
        revoke_key(locked)
        locked.applied_config_version = None
        locked.status = Device.Status.REGISTERED if locked.activated_at else Device.Status.UNREGISTERED
        locked.organization = None
        locked.space = None
        locked.name = ""
        locked.claimed_at = None
        locked.claimed_by = None
        locked.save()
        device_released.send(sender=Device, device=locked, organization_id=holder)
    return locked


def reset_device_key(device, *, actor, now=None):
    """Revoke the key of a claimed device at once, for an owner who fears someone else holds it
    (say, it was issued from a network they do not know): from the commit on, every device API call
    with it gets 401, and the unit must activate again, which the window opened here allows.

    Checked on the locked row (see lock_claimed); refused for a device that holds no key. Recorded
    in the device's history and the organization's audit log, with when and from where the revoked
    key was issued. Who may do it (owners and admins) is the caller's check, as for every rule here.
    """
    now = now or timezone.now()
    with transaction.atomic():
        locked = lock_claimed(device)
        if not locked.key_hash:
            raise DeviceActionError("This device holds no key now: it receives one when it activates.")
        revoked = {"issued_at": locked.activated_at.isoformat(), "issued_from": locked.key_issued_from}
        revoke_key(locked, now=now)
        locked.save(update_fields=REVOKED_KEY_FIELDS)
        record_change(
            locked,
            DeviceEvent.Kind.KEY_RESET,
            actor=actor,
            audit_action=AuditEntry.Action.DEVICE_KEY_RESET,
            details=revoked,
            at=now,
        )
    return locked


def record_activations(new_keys: dict, *, issued_from=None, at=None, locked=False) -> list:
    """Mark devices activated with new keys: registered, or still claimed if they were claimed.

    `new_keys` maps each device to the hash of its new key, `issued_from` (optional) each device to
    the network address its key was issued to (shown on the device page with `activated_at`).
    Replaces any previous key at once and writes an `activated` event for each. Pass `locked=True`
    when the caller already holds the devices' row locks in the current transaction (the activation
    task does, through Device.objects.create_or_lock), which spares re-reading the rows. Returns the
    devices, updated.
    """
    at = at or timezone.now()
    addresses = {device.pk: address for device, address in (issued_from or {}).items()}
    with transaction.atomic(savepoint=False):
        if not locked:
            fresh = Device.objects.select_for_update().in_bulk([device.pk for device in new_keys])
            new_keys = {fresh[device.pk]: key_hash for device, key_hash in new_keys.items()}
        for device, key_hash in new_keys.items():
            device.key_hash = key_hash
            device.key_issued_from = addresses.get(device.pk)
            device.reactivation_allowed_until = None
            device.activated_at = device.last_seen_at = at
            if device.status == Device.Status.UNREGISTERED:
                device.status = Device.Status.REGISTERED
        # Plain SQL, one statement of each kind for the whole batch (pipelined on PostgreSQL): every
        # activation of a burst comes here, and the ORM took longer to build them than to run them.
        when = connection.ops.adapt_datetimefield_value(at)
        address_field = Device._meta.get_field("key_issued_from")
        with connection.cursor() as cursor:
            cursor.executemany(
                f"UPDATE {Device._meta.db_table} SET key_hash = %s, key_issued_from = %s,"  # noqa: S608
                " reactivation_allowed_until = NULL, activated_at = %s, last_seen_at = %s, status = %s WHERE id = %s",
                [
                    [
                        device.key_hash,
                        address_field.get_db_prep_save(device.key_issued_from, connection),
                        when,
                        when,
                        device.status,
                        device.pk,
                    ]
                    for device in new_keys
                ],
            )
            cursor.executemany(
                f"INSERT INTO {DeviceEvent._meta.db_table} (device_id, kind, details, created_at)"  # noqa: S608
                " VALUES (%s, %s, '{}', %s)",
                [[device.pk, DeviceEvent.Kind.ACTIVATED, when] for device in new_keys],
            )
    return list(new_keys)


def allow_reactivation(device, *, actor, by_vendor_staff=False, now=None):
    """Open a 24-hour window in which the unit may activate again (after a factory reset).

    The caller says who acts. An owner or admin of the device's organization (the portal) acts on
    a device their organization still holds (see lock_claimed); the window is in its history.
    Vendor staff (`by_vendor_staff`, the admin) act only on a unit no organization has claimed: a
    claimed one is its owner's call. A successful re-activation replaces the key; until then the
    old key keeps working.
    """
    now = now or timezone.now()
    with transaction.atomic():
        if by_vendor_staff:
            locked = Device.objects.select_for_update().get(pk=device.pk)
            if locked.status == Device.Status.CLAIMED:
                raise DeviceActionError(
                    "This device belongs to an organization: its owner allows re-activation from the portal."
                )
        else:
            locked = lock_claimed(device)
            DeviceEvent.objects.create(
                device=locked, kind=DeviceEvent.Kind.REACTIVATION_ALLOWED, actor=actor, created_at=now
            )
        locked.reactivation_allowed_until = now + REACTIVATION_WINDOW
        locked.save(update_fields=["reactivation_allowed_until"])
    return locked


def move_devices(devices, *, space, actor):
    """Move several devices of one organization to `space`, all or none; returns how many moved."""
    with transaction.atomic():
        lock_target_space(space)
        lock_in_order(devices)
        for device in devices:
            move_device(device, space=space, actor=actor)
    return len(devices)
