"""The customer API answers odd input with its error shape, never a 500: text PostgreSQL cannot
store (a NUL character) in any field a call writes or looks up."""

import json

import pytest

from accounts.models import Role
from devices.models import Device

from .factories import ApprovedIdentityFactory, api_token
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
