"""The customer API's devices (mounted by config/customer_api.py): the device as the API and the
webhooks show it, and the calls on one device."""

from datetime import datetime
from uuid import UUID

from django.http import Http404
from ninja import Router, Schema

from accounts.access import READ, get_in_organization

from .models import Device

router = Router(tags=["devices"])


class Named(Schema):
    slug: str
    name: str


class SpaceRef(Schema):
    id: UUID
    name: str


class DeviceOut(Schema):
    id: UUID
    name: str
    status: str
    space: SpaceRef | None
    vendor: Named
    model: Named
    identifiers: dict[str, str | None]
    online: bool
    last_seen_at: datetime | None
    claimed_at: datetime | None


def api_devices():
    """Devices with what device_data reads, in a constant number of queries for any number of them."""
    return (
        Device.objects.with_related()
        .select_related("identity", "device_model__claiming_method")
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


def device_for(request, device_id, ability=READ):
    """The token's organization's device `device_id`: 404 for another organization's or a bad id."""
    try:
        code = UUID(str(device_id))
    except ValueError:
        raise Http404 from None
    return get_in_organization(api_devices(), request.auth.membership(), ability, code=code)


@router.get("/{device_id}", response=DeviceOut, summary="One device")
def get_device(request, device_id: str):
    return device_data(device_for(request, device_id))
