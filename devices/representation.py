"""The device as the customer API and the webhooks show it: one shape, read in a constant number
of queries, for the API's answers (devices/org_api.py) and the webhooks' events (webhooks/outbox.py)."""

from .models import Device


def api_devices():
    """Devices with what device_data reads, in a constant number of queries for any number of them.
    The claiming method is prefetched rather than joined: devices of one model then share one
    method, whose fields are read and kept once rather than once per device."""
    return (
        Device.objects.with_related()
        .select_related("identity")
        .prefetch_related("device_model__claiming_method__fields")
    )


def device_data(device, now=None):
    """The device as the customer API and the webhooks show it (DeviceOut)."""
    model = device.device_model
    return {
        "id": device.code,
        "name": device.name,
        "status": device.status,
        "space": {"id": device.space.code, "name": device.space.name} if device.space_id else None,
        "vendor": {"slug": model.vendor.slug, "name": model.vendor.name},
        "model": {"slug": model.slug, "name": model.name},
        "identifiers": {
            field.key: getattr(device.identity, field.column) for field in model.claiming_method.ordered_fields()
        },
        "online": device.is_online(now),
        "last_seen_at": device.last_seen_at,
        "claimed_at": device.claimed_at,
    }
