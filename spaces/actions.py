"""Space rules: create, rename, and delete only when empty (or after moving its devices away).

Called alike by the portal views, the admin and the CLI; each change goes to the audit log.
"""

from django.db import IntegrityError, transaction

from accounts.audit import record_audit
from accounts.models import AuditEntry
from devices.actions import move_device
from portal.errors import UserFacingError

from .models import Space


class SpaceActionError(UserFacingError):
    """A space rule refused the action."""


class SpaceNotEmpty(SpaceActionError):
    pass


def _clean_name(name):
    name = name.strip()
    if not name:
        raise SpaceActionError("A space needs a name.")
    return name


def _duplicate_name(name):
    return SpaceActionError(f"There is already a space named “{name}” in this organization.")


def create_space(organization, *, name, actor):
    """Create a space named `name` in `organization`; names are unique within an organization."""
    name = _clean_name(name)
    try:
        with transaction.atomic():
            space = Space.objects.create(organization=organization, name=name)
            record_audit(
                organization_id=organization.pk, actor=actor, action=AuditEntry.Action.SPACE_CREATED, target=name
            )
    except IntegrityError as exc:
        raise _duplicate_name(name) from exc
    return space


def rename_space(space, *, name, actor):
    """Give `space` a new name, unique within its organization."""
    name = _clean_name(name)
    if name == space.name:
        return space
    previous = space.name
    try:
        with transaction.atomic():
            Space.objects.filter(pk=space.pk).update(name=name)
            record_audit(
                organization_id=space.organization_id,
                actor=actor,
                action=AuditEntry.Action.SPACE_RENAMED,
                target=name,
                details={"from": previous, "to": name},
            )
    except IntegrityError as exc:
        raise _duplicate_name(name) from exc
    space.name = name
    return space


def delete_space(space, *, actor, move_devices_to=None):
    """Delete `space`. A space with devices is deleted only together with moving them all to
    `move_devices_to` (another space of the same organization), each by devices.actions.move_device,
    so each move is in the devices' history and the audit log; otherwise SpaceNotEmpty.
    """
    if move_devices_to is not None and (
        move_devices_to.pk == space.pk or move_devices_to.organization_id != space.organization_id
    ):
        raise SpaceActionError("Choose another space of this organization to move the devices to.")
    with transaction.atomic():
        locked = Space.objects.select_for_update().get(pk=space.pk)
        devices = list(locked.devices.select_related("space").order_by("pk"))
        if devices and move_devices_to is None:
            raise SpaceNotEmpty(
                f"“{locked.name}” still has {len(devices)} device{'s' if len(devices) != 1 else ''}. "
                "Move them to another space first."
            )
        for device in devices:
            move_device(device, space=move_devices_to, actor=actor)
        locked.delete()
        record_audit(
            organization_id=locked.organization_id,
            actor=actor,
            action=AuditEntry.Action.SPACE_DELETED,
            target=locked.name,
            details={"devices_moved_to": move_devices_to.name} if devices else {},
        )
