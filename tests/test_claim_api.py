"""POST /api/v1/org/claims: one unit through claim_device, a list through claim_devices (all or
none), each refusal with its code and status, and nothing told about other organizations."""

import json

import pytest

from accounts.models import AuditEntry, Role
from apitokens.models import ApiToken
from devices.models import Device

from .conftest import CAMERA_CODE
from .factories import ApprovedIdentityFactory, ClaimedDeviceFactory, SpaceFactory, api_token
from .url_registry import claim_body

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_throttle")]


@pytest.fixture
def token(organization, owner):
    return api_token(organization, Role.ADMIN, actor=owner)[1]


def _claim(unit, space, **extra):
    return claim_body(unit, space) | {"name": "Lobby screen"} | extra


def post(client, token, body):
    return client.post(
        "/api/v1/org/claims",
        data=json.dumps(body),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )


def test_a_claim_answers_201_with_the_device_as_the_api_shows_it(client, token, space, device_model):
    unit = ApprovedIdentityFactory(device_model=device_model)
    response = post(client, token, _claim(unit, space))
    assert response.status_code == 201
    device = Device.objects.get(identity=unit)
    assert response.json()["id"] == str(device.code)
    assert response.json()["space"] == {"id": str(space.code), "name": space.name}
    assert response.json()["identifiers"] == unit.identifiers
    assert device.status == Device.Status.CLAIMED
    # The token's own account is the actor, in the device and the audit log.
    token_user = ApiToken.objects.get().user
    assert device.claimed_by == token_user
    assert AuditEntry.objects.get(action=AuditEntry.Action.DEVICE_CLAIMED, target="Lobby screen").actor == token_user


def test_a_claim_code_unit_is_claimed_with_its_code_and_refused_without(client, token, space, unit):
    response = post(client, token, _claim(unit, space))
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_claim_code"
    assert response.json()["error"]["field"] == "claim_code"
    assert post(client, token, _claim(unit, space, claim_code=CAMERA_CODE)).status_code == 201


@pytest.mark.parametrize(
    ("case", "status", "code"),
    [
        ("not_approved", 422, "not_approved"),
        ("bad_mac", 400, "invalid_format"),
        ("revoked", 422, "revoked"),
        ("theirs", 409, "claimed_by_another_organization"),
        ("mine", 409, "already_claimed_by_you"),
    ],
)
def test_each_refusal_answers_its_code_and_status(client, token, space, device_model, outsider, case, status, code):
    unit = ApprovedIdentityFactory(device_model=device_model)
    body = _claim(unit, space)
    if case == "not_approved":
        body["identifiers"]["serial_number"] = "SN-NOT-MINE"
    elif case == "bad_mac":
        body["identifiers"]["mac_address"] = "02:00"
    elif case == "revoked":
        unit.status = unit.Status.REVOKED
        unit.save()
    elif case == "theirs":
        ClaimedDeviceFactory(identity=unit, space__organization=outsider.memberships.get().organization)
    else:
        mine = ClaimedDeviceFactory(identity=unit, space=space)
    response = post(client, token, body)
    assert response.status_code == status
    error = response.json()["error"]
    assert error["code"] == code
    assert error["message"]
    if case == "mine":
        assert error["device"] == str(mine.code)
    if case == "bad_mac":
        assert error["field"] == "mac_address"


def test_too_many_failures_is_429_with_retry_after(client, token, space, device_model, settings):
    settings.CLAIM_FAILURE_LIMIT = 2
    body = _claim(ApprovedIdentityFactory(device_model=device_model), space)
    body["identifiers"]["serial_number"] = "SN-GUESS"
    assert [post(client, token, body).status_code for _ in range(2)] == [422, 422]
    response = post(client, token, body)
    assert response.status_code == 429
    assert response.json()["error"]["code"] == "too_many_failures"
    assert 0 < int(response["Retry-After"]) <= settings.CLAIM_FAILURE_WINDOW


def test_another_organization_s_space_is_404_like_a_space_that_does_not_exist(
    client, token, device_model, outsider, space
):
    unit = ApprovedIdentityFactory(device_model=device_model)
    their_space = SpaceFactory(organization=outsider.memberships.get().organization)
    answers = []
    for space_id in (their_space.code, "0b9ce6a4-55a5-4f70-9b0e-8f3b2c1d0e7a"):
        response = post(client, token, _claim(unit, space) | {"space": str(space_id)})
        answers.append((response.status_code, response.json()))
    assert answers[0] == answers[1]
    assert answers[0][0] == 404
    assert answers[0][1]["error"]["field"] == "space"
    assert not Device.objects.filter(identity=unit).exists()


def test_an_unknown_model_is_404_naming_the_field(client, token, space, device_model):
    response = post(client, token, _claim(ApprovedIdentityFactory(device_model=device_model), space, model="nope"))
    assert response.status_code == 404
    assert response.json()["error"]["field"] == "model"


def test_a_list_is_claimed_all_together_with_a_report_row_by_row(client, token, space, device_model):
    units = [ApprovedIdentityFactory(device_model=device_model) for _ in range(3)]
    response = post(client, token, [_claim(unit, space, name=f"Screen {n}") for n, unit in enumerate(units, 1)])
    assert response.status_code == 201
    body = response.json()
    assert body["claimed"] == 3
    assert [(row["line"], row["result"], row["device"]["name"]) for row in body["rows"]] == [
        (1, "claimed", "Screen 1"),
        (2, "claimed", "Screen 2"),
        (3, "claimed", "Screen 3"),
    ]
    assert Device.objects.filter(status=Device.Status.CLAIMED, space=space).count() == 3


def test_a_list_with_one_refused_claim_claims_nothing_and_says_which(client, token, space, device_model):
    units = [ApprovedIdentityFactory(device_model=device_model) for _ in range(2)]
    claims = [_claim(unit, space) for unit in units] + [_claim(units[0], space, model="nope")]
    claims[1]["identifiers"]["serial_number"] = "SN-NOT-MINE"
    response = post(client, token, claims)
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "rows_refused"
    assert [(row["line"], row["result"]) for row in error["rows"]] == [
        (1, "claimable"),
        (2, "not_approved"),
        (3, "not_found"),
    ]
    assert not Device.objects.filter(status=Device.Status.CLAIMED).exists()


def test_a_list_longer_than_ten_thousand_claims_is_refused_unread(client, token, space, device_model):
    claim = _claim(ApprovedIdentityFactory(device_model=device_model), space)
    response = post(client, token, [claim] * 10_001)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_request"


def test_a_viewer_token_may_not_claim(client, organization, owner, space, device_model):
    viewer_token = api_token(organization, Role.VIEWER, actor=owner)[1]
    response = post(client, viewer_token, _claim(ApprovedIdentityFactory(device_model=device_model), space))
    assert response.status_code == 403
