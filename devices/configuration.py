"""Desired configuration: each save in the portal makes a new numbered version; the device
fetches the newest and reports the version it applied in its heartbeats."""

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Max

from accounts.models import AuditEntry
from portal.errors import UserFacingError
from vendors.declarations import clean_values, defaults

from .actions import lock_claimed
from .history import record_change
from .models import ConfigurationVersion, DeviceEvent


class ConfigurationError(UserFacingError):
    """The values do not fit the model's settings; `errors` maps keys to messages."""

    def __init__(self, errors):
        super().__init__("The configuration was not saved: some settings are not valid.")
        self.errors = errors


def save_configuration(device, *, values, actor):
    """Validate `values` against the model's settings and save them as the next version, for a
    device its organization still holds (see lock_claimed; the lock also serializes the version
    numbers). Saving values equal to the current version makes no new version. Returns the version.
    """
    try:
        values = clean_values(device.device_model.setting_declarations, values)
    except ValidationError as exc:
        raise ConfigurationError(exc.message_dict if hasattr(exc, "error_dict") else {"__all__": exc.messages}) from exc
    with transaction.atomic():
        locked = lock_claimed(device)
        current = locked.configuration_versions.order_by("-version").first()
        if current is not None and current.values == values:
            return current
        version = (locked.configuration_versions.aggregate(n=Max("version"))["n"] or 0) + 1
        saved = ConfigurationVersion.objects.create(device=locked, version=version, values=values, created_by=actor)
        record_change(
            locked,
            DeviceEvent.Kind.CONFIGURATION_CHANGED,
            actor=actor,
            audit_action=AuditEntry.Action.CONFIGURATION_CHANGED,
            details={"version": version, "values": values},
        )
    return saved


def desired_configuration(device):
    """(version, values) the device should run: the newest saved version, or the declared
    defaults as version 0 when nothing was saved."""
    current = device.configuration_versions.order_by("-version").first()
    if current is None:
        return 0, defaults(device.device_model.setting_declarations)
    return current.version, current.values
