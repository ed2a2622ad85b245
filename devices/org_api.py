"""The customer API's devices (mounted by config/customer_api.py): the device as the API and the
webhooks show it, the list with the dashboard's filters, and the calls on one device. Each call is
one domain rule (devices/actions.py, commands.py, configuration.py) with the token's role checked as
a member's would be; the rules' refusals are answered by config/customer_api.py."""

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from django.http import Http404
from ninja import Field, Query, Router, Schema, Status
from pydantic import BaseModel, ConfigDict

from accounts.access import MANAGE, OPERATE, READ, get_in_organization
from portal.api_errors import InvalidFields, error_responses, refuse_unknown_parameters
from portal.keyset import page_after
from spaces.models import Space

from .actions import move_device, release_device
from .commands import send_command
from .configuration import save_configuration
from .forms import ReleaseDeviceForm
from .models import Device
from .representation import api_devices, device_data
from .search import CONNECTION_CHOICES, MAX_TERM_LENGTH, SORT_CHOICES, ApiDeviceSearchForm

router = Router(tags=["devices"])

DEFAULT_PAGE, MAX_PAGE = 100, 500


class Out(BaseModel):
    """What a call answers: plain pydantic, which checks the dicts the calls build (device_data)
    several times faster than ninja's Schema, made to read ORM objects."""


class Named(Out):
    slug: str
    name: str


class SpaceRef(Out):
    id: UUID
    name: str


class DeviceOut(Out):
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


class DevicePage(Out):
    devices: list[DeviceOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page.")


class Strict(Schema):
    model_config = ConfigDict(extra="forbid")


class DeviceFilters(Strict):
    q: str = Field("", max_length=MAX_TERM_LENGTH, description="Words of the name, or an identifier as printed.")
    status: Literal[tuple(Device.Status.values)] | None = None
    connection: Literal[tuple(key for key, _ in CONNECTION_CHOICES)] | None = None
    model: str = Field("", description="`<vendor slug>/<model slug>`.")
    space: UUID | None = Field(None, description="A space's id.")
    sort: Literal[tuple(key for key, _ in SORT_CHOICES)] = "name"
    cursor: str = Field("", description="The `next_cursor` of the page before.")
    limit: int = Field(DEFAULT_PAGE, ge=1, le=MAX_PAGE)


class MoveIn(Strict):
    space: UUID


class CommandIn(Strict):
    name: str = Field(max_length=32)
    arguments: dict[str, Any] = Field(default_factory=dict)


class CommandOut(Out):
    id: UUID
    name: str
    arguments: dict[str, Any]
    status: str
    created_at: datetime


class ConfigurationIn(Strict):
    values: dict[str, Any]


class ConfigurationOut(Out):
    version: int
    values: dict[str, Any]


class ReleaseIn(Strict):
    confirm_name: str = Field(description="The device's name, as a check that the id is the one meant.")


def device_for(request, device_id, ability=READ):
    """The token's organization's device `device_id`: 404 for another organization's or a bad id."""
    try:
        code = UUID(str(device_id))
    except ValueError:
        raise Http404 from None
    return get_in_organization(api_devices(), request.auth.membership(), ability, code=code)


@router.get("", response={200: DevicePage, **error_responses(400)}, summary="The organization's devices")
def list_devices(request, filters: Query[DeviceFilters]):
    """Filtered and sorted as on the Devices page, a page at a time (keyset: every page costs the same)."""
    refuse_unknown_parameters(request, DeviceFilters.model_fields)
    organization = request.auth.organization
    values = filters.model_dump(exclude={"cursor", "limit"})
    form = ApiDeviceSearchForm({key: value for key, value in values.items() if value}, organization=organization)
    if not form.is_valid():
        raise InvalidFields.of(form)
    # A model's declarations are JSON device_data never reads: not parsed once per row.
    listed = api_devices().defer("device_model__command_declarations", "device_model__setting_declarations")
    devices = form.search(listed.filter(organization=organization, status=Device.Status.CLAIMED))
    rows, next_cursor = page_after(devices, filters.cursor, filters.limit)
    return {"devices": [device_data(device) for device in rows], "next_cursor": next_cursor}


@router.get("/{device_id}", response={200: DeviceOut, **error_responses(400, 404)}, summary="One device")
def get_device(request, device_id: str):
    refuse_unknown_parameters(request)
    return device_data(device_for(request, device_id))


@router.post(
    "/{device_id}/move",
    response={200: DeviceOut, **error_responses(400, 403, 404, 409, 413)},
    summary="Move a device",
    url_name="move_device",
)
def move(request, device_id: str, body: MoveIn):
    """To another space of the organization (owners' and admins' tokens)."""
    device = device_for(request, device_id, MANAGE)
    space = get_in_organization(Space.objects.all(), request.auth.membership(), MANAGE, code=body.space)
    return device_data(move_device(device, space=space, actor=request.auth.user))


@router.post(
    "/{device_id}/commands",
    response={201: CommandOut, **error_responses(400, 403, 404, 413)},
    summary="Send a command to a device",
    url_name="send_command",
)
def send(request, device_id: str, body: CommandIn):
    """One of the model's commands, with its arguments (operators' tokens and up); queued for the device."""
    device = device_for(request, device_id, OPERATE)
    command = send_command(device, name=body.name, arguments=body.arguments, actor=request.auth.user)
    return Status(
        201,
        {
            "id": command.code,
            "name": command.name,
            "arguments": command.arguments,
            "status": command.status,
            "created_at": command.created_at,
        },
    )


@router.put(
    "/{device_id}/configuration",
    response={200: ConfigurationOut, **error_responses(400, 403, 404, 409, 413)},
    summary="Save a device's configuration",
    url_name="save_configuration",
)
def configure(request, device_id: str, body: ConfigurationIn):
    """The model's settings as the next version (operators' tokens and up); the same values as the
    current version make no new one."""
    device = device_for(request, device_id, OPERATE)
    saved = save_configuration(device, values=body.values, actor=request.auth.user)
    return {"version": saved.version, "values": saved.values}


@router.post(
    "/{device_id}/release",
    response={204: None, **error_responses(400, 403, 404, 409, 413)},
    summary="Release a device",
    url_name="release_device",
)
def release(request, device_id: str, body: ReleaseIn):
    """Its whole history is deleted and its key revoked (owners' and admins' tokens); any
    organization may claim it again."""
    device = device_for(request, device_id, MANAGE)
    form = ReleaseDeviceForm({"confirm_name": body.confirm_name}, device=device)
    if not form.is_valid():
        raise InvalidFields.of(form)
    release_device(device, actor=request.auth.user)
    return Status(204, None)
