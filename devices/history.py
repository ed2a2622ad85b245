"""Writing a device's history: one entry per change, and the same line in the organization's audit log.

The device's history is deleted on release; the audit log is the organization's own record and
keeps the line (with the device's name as it was).
"""

from django.utils import timezone

from accounts.audit import record_audit

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
