"""The customer API's frame: bearer tokens, the error shape, tenant isolation of one device."""

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import AuditEntry, Role
from apitokens.tokens import revoke_token
from tests.factories import ClaimedDeviceFactory, SpaceFactory, api_token


def bearer(raw):
    return {"HTTP_AUTHORIZATION": f"Bearer {raw}"}


@pytest.fixture
def token(organization, owner):
    return api_token(organization, Role.VIEWER, actor=owner)


def test_spaces_are_listed_for_the_token_s_organization_only(client, organization, token, outsider):
    SpaceFactory(organization=organization, name="Lobby")
    response = client.get("/api/v1/org/spaces", **bearer(token[1]))
    assert response.status_code == 200
    assert [space["name"] for space in response.json()] == ["Lobby"]


def test_a_missing_or_wrong_token_is_401_with_the_error_shape(client, token):
    for headers in ({}, bearer("ptk_not-a-token"), bearer(token[1] + "x"), {"HTTP_AUTHORIZATION": token[1]}):
        response = client.get("/api/v1/org/spaces", **headers)
        assert response.status_code == 401
        assert response.json() == {"error": {"code": "unauthorized", "message": "Authentication failed."}}
        assert response["WWW-Authenticate"].startswith("Bearer")


def test_a_revoked_token_is_refused_at_once(client, organization, token, owner):
    assert client.get("/api/v1/org/spaces", **bearer(token[1])).status_code == 200
    revoke_token(token[0], actor=owner)
    assert client.get("/api/v1/org/spaces", **bearer(token[1])).status_code == 401


def test_an_expired_token_is_refused(client, organization, owner):
    _, raw = api_token(organization, actor=owner, expires_at=timezone.now() - timedelta(seconds=1))
    assert client.get("/api/v1/org/spaces", **bearer(raw)).status_code == 401


def test_only_the_hash_of_a_token_is_stored_and_creating_and_revoking_are_audited(organization, token, owner):
    stored, raw = token
    assert raw.startswith("ptk_")
    assert raw not in stored.token_hash
    assert stored.prefix == raw[:8]
    revoke_token(stored, actor=owner)
    actions = list(AuditEntry.objects.filter(organization=organization).values_list("action", flat=True))
    assert actions == [AuditEntry.Action.API_TOKEN_REVOKED, AuditEntry.Action.API_TOKEN_CREATED]


def test_a_device_is_shown_to_its_organization_and_is_404_to_another(client, space, token, outsider):
    device = ClaimedDeviceFactory(space=space, name="Lobby camera")
    response = client.get(f"/api/v1/org/devices/{device.code}", **bearer(token[1]))
    assert response.status_code == 200
    body = response.json()
    assert body["name"] == "Lobby camera"
    assert body["space"]["name"] == space.name
    assert body["identifiers"] == device.identity.identifiers

    other_token = api_token(outsider.memberships.get().organization, actor=outsider)[1]
    for device_id in (device.code, "not-a-uuid"):
        response = client.get(f"/api/v1/org/devices/{device_id}", **bearer(other_token))
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"
