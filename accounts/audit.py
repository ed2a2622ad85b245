"""The organization audit log: one function writes it, whoever acts (portal, admin, API, CLI, tasks)."""

from .models import AuditEntry

TARGET_LENGTH = AuditEntry._meta.get_field("target").max_length


def record_audit(*, organization_id, actor, action, target, details=None):
    """Add a line to the audit log of organization `organization_id`.

    `actor` is the user who acted (None for the system), `action` an AuditEntry.Action,
    `target` a short description of the object as the user saw it (a device or space name,
    an e-mail address), `details` a JSON-able dict (old and new values). Call it inside the
    transaction of the change it records, so the log never tells of a change that rolled back.
    """
    return AuditEntry.objects.create(**_entry(organization_id, actor, action, target, details))


def record_audits(*, organization_id, actor, action, lines):
    """record_audit for many lines of one action at once (one INSERT): `lines` are (target, details)."""
    return AuditEntry.objects.bulk_create(
        AuditEntry(**_entry(organization_id, actor, action, target, details)) for target, details in lines
    )


def _entry(organization_id, actor, action, target, details):
    return {
        "organization_id": organization_id,
        "actor": actor,
        "actor_email": actor.email if actor is not None else "",
        "action": action,
        "target": str(target)[:TARGET_LENGTH],
        "details": details or {},
    }
