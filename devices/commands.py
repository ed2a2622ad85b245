"""Commands: sent from the portal, fetched and acknowledged by the device over its API."""

from datetime import timedelta

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from accounts.models import AuditEntry
from portal.errors import UserFacingError
from vendors.declarations import clean_values
from webhooks.models import EventName
from webhooks.outbox import record_device_events

from .actions import lock_claimed, lock_in_order
from .history import record_change
from .models import Command, DeviceEvent

# A command the device has not completed by then is marked expired by the periodic sweep.
COMMAND_TIMEOUT = timedelta(minutes=15)
MAX_OUTPUT = 4000


class CommandError(UserFacingError):
    """The command cannot be sent or its result not recorded."""


def send_command(device, *, name, arguments, actor, now=None):
    """Queue the command `name` with `arguments` for a device its organization still holds (see
    lock_claimed), validated against the model's declaration; recorded in the device's history.
    Returns the Command."""
    declaration = device.device_model.command_declaration(name)
    if declaration is None:
        raise CommandError(f"{device.device_model.name} has no command {name!r}.")
    try:
        arguments = clean_values(declaration.get("arguments", []), arguments or {})
    except ValidationError as exc:
        raise CommandError("; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())) from exc
    now = now or timezone.now()
    with transaction.atomic():
        locked = lock_claimed(device, refusal=CommandError)
        command = Command.objects.create(
            device=locked,
            name=name,
            arguments=arguments,
            created_by=actor,
            created_at=now,
            expires_at=now + COMMAND_TIMEOUT,
        )
        record_change(
            locked,
            DeviceEvent.Kind.COMMAND_SENT,
            actor=actor,
            audit_action=AuditEntry.Action.COMMAND_SENT,
            details={"command": name, "arguments": arguments},
            at=now,
        )
    return command


def deliver_pending_commands(device, now=None):
    """The commands the device should run now, oldest first; queued ones become delivered.

    Delivered but unfinished commands are handed out again (the device may have restarted). Each
    statement checks that the device still has the key it authenticated with: a release or key
    reset that committed since hands the old key nothing sent after it.
    """
    now = now or timezone.now()
    current = {"device__key_hash": device.key_hash}
    pending = list(
        device.commands.filter(status__in=Command.PENDING, expires_at__gt=now, **current).order_by("created_at", "id")
    )
    queued = [c.pk for c in pending if c.status == Command.Status.QUEUED]
    if queued:
        Command.objects.filter(pk__in=queued, status=Command.Status.QUEUED, **current).update(
            status=Command.Status.DELIVERED, delivered_at=now
        )
    return pending


def report_command_result(device, *, command_code, succeeded, output="", now=None):
    """Record the device's result for one of its own pending commands.

    Returns the Command; raises Command.DoesNotExist for another device's or an unknown command
    and CommandError when the command is already final (a late or repeated report).
    """
    now = now or timezone.now()
    with transaction.atomic():
        command = Command.objects.select_for_update().get(device=device, code=command_code)
        if not command.is_pending:
            raise CommandError(f"The command is already {command.get_status_display().lower()}.")
        command.status = Command.Status.SUCCEEDED if succeeded else Command.Status.FAILED
        command.output = (output or "")[:MAX_OUTPUT]
        command.completed_at = now
        command.save(update_fields=["status", "output", "completed_at"])
        record_device_events(
            EventName.COMMAND_FINISHED, [device], occurred_at=now, extra={"command": command_data(command)}
        )
    return command


def command_data(command):
    """A command as the command.finished webhook shows it."""
    return {"id": command.code, "name": command.name, "status": command.status, "output": command.output}


def expire_commands(now=None):
    """Mark pending commands past their timeout expired (set-based); returns how many."""
    now = now or timezone.now()
    return Command.objects.filter(status__in=Command.PENDING, expires_at__lte=now).update(
        status=Command.Status.EXPIRED, completed_at=now
    )


def bulk_command_choices(device_models):
    """(name, label) of the commands that every one of `device_models` declares and that need no
    argument without a default: the ones the dashboard can send to a selection at once."""
    common = None
    for model in device_models:
        sendable = {
            c["name"]: c.get("label", c["name"])
            for c in model.command_declarations
            if all("default" in a or a["type"] == "boolean" for a in c.get("arguments", []))
        }
        common = sendable if common is None else {k: v for k, v in common.items() if k in sendable}
    return sorted((common or {}).items())


def send_command_to_devices(devices, *, name, actor):
    """Queue the command `name` (default arguments) for each device, all or none; returns the commands."""
    with transaction.atomic():
        lock_in_order(devices)
        return [send_command(device, name=name, arguments={}, actor=actor) for device in devices]
