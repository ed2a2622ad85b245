"""The customer API answers odd input with its error shape, never a 500: text PostgreSQL cannot
store (a NUL character) in any field a call writes or looks up."""

import json

import pytest

from accounts.models import Role
from devices.models import Device

from .factories import ApprovedIdentityFactory, ClaimedDeviceFactory, api_token
from .url_registry import claim_body

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_throttle")]


@pytest.fixture
def token(organization, owner):
    return api_token(organization, Role.ADMIN, actor=owner)[1]


def post(client, token, path, body):
    return client.post(
        f"/api/v1/org/{path}",
        data=json.dumps(body),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )


def test_a_nul_character_in_a_claimed_device_s_name_is_a_400_and_claims_nothing(client, token, space, device_model):
    unit = ApprovedIdentityFactory(device_model=device_model)
    body = claim_body(unit, space) | {"name": "Lobby\x00screen"}
    response = post(client, token, "claims", body)
    assert response.status_code == 400, response.content
    assert "name" in response.json()["error"]["fields"]
    response = post(client, token, "claims", [body])
    assert response.status_code == 400, response.content
    assert "0.name" in response.json()["error"]["fields"]
    assert not Device.objects.filter(identity=unit, status=Device.Status.CLAIMED).exists()


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("commands", {"name": "firmware_update", "arguments": {"url": "https://example.test/\x00.bin"}}),
        ("commands", {"name": "identify", "arguments": {"seconds\x00": 5}}),
        ("commands", {"name": "identify\x00", "arguments": {}}),
        ("commands", {"name": "identify", "arguments": {"seconds": 5, "extra": "\ud800"}}),
        ("configuration", {"values": {"display_name": "Lobby\x00screen"}}),
        ("configuration", {"values": {"display_name\x00": "Lobby"}}),
        ("configuration", {"values": {"volume": 10, "time_zone": "UTC\x00"}}),
        ("release", {"confirm_name": "Lobby\x00hub"}),
        ("move", {"space": "\x00"}),
    ],
)
def test_text_the_database_cannot_store_in_a_command_or_configuration_is_a_400_and_writes_nothing(
    client, token, space, path, body
):
    device = ClaimedDeviceFactory(space=space, name="Lobby hub")
    method = client.put if path == "configuration" else client.post
    response = method(
        f"/api/v1/org/devices/{device.code}/{path}",
        data=json.dumps(body),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )
    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] in {"invalid_request", "invalid_command", "invalid_configuration"}
    assert not device.commands.exists()
    assert not device.configuration_versions.exists()
    device.refresh_from_db()
    assert device.status == Device.Status.CLAIMED
