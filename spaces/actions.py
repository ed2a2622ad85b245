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


def _lock(spaces):
    """Lock the rows of `spaces` in id order (so that two rules locking the same two cannot
    deadlock); returns the ones that still exist, by id. Call it inside transaction.atomic()."""
    ids = [space.pk for space in spaces if space is not None]
    return {locked.pk: locked for locked in Space.objects.select_for_update().filter(pk__in=ids).order_by("pk")}


def rename_space(space, *, name, actor):
    """Give `space` a new name, unique within its organization; the log says which name it had
    when it was locked. Refused for a space deleted meanwhile."""
    name = _clean_name(name)
    try:
        with transaction.atomic():
            locked = _lock([space]).get(space.pk)
            if locked is None:
                raise SpaceActionError(f"The space “{space.name}” was deleted meanwhile.")
            if name != locked.name:
                Space.objects.filter(pk=locked.pk).update(name=name)
                record_audit(
                    organization_id=locked.organization_id,
                    actor=actor,
                    action=AuditEntry.Action.SPACE_RENAMED,
                    target=name,
                    details={"from": locked.name, "to": name},
                )
    except IntegrityError as exc:
        raise _duplicate_name(name) from exc
    space.name = name
    return space


def delete_space(space, *, actor, move_devices_to=None):
    """Delete `space`. A space with devices is deleted only together with moving them all to
    `move_devices_to` (another space of the same organization), each by devices.actions.move_device,
    so each move is in the devices' history and the audit log; otherwise SpaceNotEmpty.

    Both spaces are locked first, then the devices still in the space: a device moved away
    meanwhile stays where it went. A space deleted meanwhile is left at that; a destination
    deleted meanwhile is refused.
    """
    if move_devices_to is not None and (
        move_devices_to.pk == space.pk or move_devices_to.organization_id != space.organization_id
    ):
        raise SpaceActionError("Choose another space of this organization to move the devices to.")
    with transaction.atomic():
        locked_spaces = _lock([space, move_devices_to])
        locked = locked_spaces.get(space.pk)
        if locked is None:
            return
        if move_devices_to is not None and move_devices_to.pk not in locked_spaces:
            raise SpaceActionError(f"The space “{move_devices_to.name}” was deleted meanwhile; choose another.")
        # In identity order, as every rule that locks several devices (devices.actions.lock_in_order).
        devices = list(locked.devices.select_for_update().order_by("identity_id"))
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
