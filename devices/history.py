"""Writing a device's history: one entry per change, and the same line in the organization's audit log.

The device's history is deleted on release; the audit log is the organization's own record and
keeps the line (with the device's name as it was).
"""

from django.utils import timezone

from accounts.audit import record_audit, record_audits

from .models import DeviceEvent


def record_change(device, kind, *, actor, audit_action=None, details=None, space=None, at=None):
    """Add a DeviceEvent of `kind` to `device`'s history and, when `audit_action` is given (a
    customer's action), a line to its organization's audit log. Call it inside the transaction
    of the change it records."""
    details = details or {}
    at = at or timezone.now()
    event = DeviceEvent.objects.create(
        device=device, kind=kind, actor=actor, space=space, details=details, created_at=at
    )
    if audit_action is not None:
        record_audit(
            organization_id=device.organization_id,
            actor=actor,
            action=audit_action,
            target=device.name,
            details={**details, "device": str(device.code)},
        )
    return event


def record_changes(changes, kind, *, actor, audit_action, at):
    """record_change for many devices of one organization at once (one INSERT for the history, one
    for the audit log): `changes` are (device, details, space). Call it inside the transaction of
    the change it records."""
    if not changes:
        return
    DeviceEvent.objects.bulk_create(
        DeviceEvent(device=device, kind=kind, actor=actor, space=space, details=details, created_at=at)
        for device, details, space in changes
    )
    record_audits(
        organization_id=changes[0][0].organization_id,
        actor=actor,
        action=audit_action,
        lines=[(device.name, {**details, "device": str(device.code)}) for device, details, _ in changes],
    )
