"""The customer API's device calls: the list with the dashboard's filters and cursor pagination,
and each call on one device through its domain rule, with the token's role and the error shape."""

import json
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accounts.models import AuditEntry, Role
from devices.models import Command, Device
from tests.factories import ClaimedDeviceFactory, SpaceFactory, api_token

pytestmark = pytest.mark.django_db


def bearer(raw):
    return {"HTTP_AUTHORIZATION": f"Bearer {raw}"}


def call(client, method, url, token, body=None, **extra):
    if body is None:
        return getattr(client, method)(url, **bearer(token), **extra)
    return getattr(client, method)(
        url, data=json.dumps(body), content_type="application/json", **bearer(token), **extra
    )


@pytest.fixture
def tokens(organization, owner):
    return {role: api_token(organization, role, name=role, actor=owner)[1] for role in Role.values if role != "owner"}


@pytest.fixture
def device(space):
    return ClaimedDeviceFactory(space=space, name="Lobby hub")


def all_pages(client, token, **query):
    names, cursor, pages = [], "", 0
    while True:
        response = client.get("/api/v1/org/devices", {**query, "cursor": cursor}, **bearer(token))
        assert response.status_code == 200, response.json()
        body = response.json()
        names += [device["name"] for device in body["devices"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            return names, pages


@pytest.mark.parametrize("sort", ["name", "-name", "model", "-model", "last_seen", "-last_seen"])
def test_the_pages_of_the_list_hold_every_device_once_in_the_sort_order(client, space, tokens, sort):
    now = timezone.now()
    for n in range(13):
        # Equal names and equal or missing last_seen_at: the keyset must break the ties.
        seen = None if n % 3 == 0 else now - timedelta(minutes=n % 4)
        ClaimedDeviceFactory(space=space, name=f"hub {n % 5}", last_seen_at=seen)
    names, pages = all_pages(client, tokens[Role.VIEWER], sort=sort, limit=4)
    everything = client.get("/api/v1/org/devices", {"sort": sort, "limit": 500}, **bearer(tokens[Role.VIEWER]))
    assert names == [device["name"] for device in everything.json()["devices"]]
    assert len(names) == 13
    assert pages == 4


def test_the_list_has_the_dashboard_s_filters(client, organization, space, tokens, device_model):
    other_space = SpaceFactory(organization=organization, name="Store")
    ClaimedDeviceFactory(
        space=space, name="Lobby hub", last_seen_at=timezone.now(), activated_at=timezone.now(), status="claimed"
    )
    store = ClaimedDeviceFactory(space=other_space, name="Store hub", identity__device_model=device_model)
    token = tokens[Role.VIEWER]

    def names(**query):
        response = client.get("/api/v1/org/devices", query, **bearer(token))
        assert response.status_code == 200, response.json()
        return [device["name"] for device in response.json()["devices"]]

    assert names() == ["Lobby hub", "Store hub"]
    assert names(q="store") == ["Store hub"]
    assert names(q=store.identity.identifier_1) == ["Store hub"]
    assert names(space=str(other_space.code)) == ["Store hub"]
    assert names(connection="online") == ["Lobby hub"]
    assert names(connection="never") == ["Store hub"]
    assert names(model=f"{device_model.vendor.slug}/{device_model.slug}") == ["Store hub"]
    assert names(sort="-name") == ["Store hub", "Lobby hub"]


def test_a_filter_that_is_not_a_choice_is_400_with_its_field(client, device, tokens):
    for query, field in (
        ({"status": "stolen"}, "status"),
        ({"model": "nobody/nothing"}, "model"),
        ({"space": "not-a-space"}, "space"),
        ({"sort": "price"}, "sort"),
        ({"limit": "501"}, "limit"),
        ({"limit": "zero"}, "limit"),
    ):
        response = client.get("/api/v1/org/devices", query, **bearer(tokens[Role.VIEWER]))
        assert response.status_code == 400, query
        assert response.json()["error"]["code"] == "invalid_request"
        assert field in response.json()["error"]["fields"], response.json()


def test_a_cursor_the_list_did_not_make_is_400(client, device, tokens):
    for cursor in ("garbage", "W10", "WyJhIl0", "x" * 3000, "WyJhIiwiYiJd"):
        response = client.get("/api/v1/org/devices", {"cursor": cursor}, **bearer(tokens[Role.VIEWER]))
        assert response.status_code == 400, cursor
        assert response.json()["error"]["code"] == "invalid_cursor"


def test_the_list_costs_the_same_queries_for_any_number_of_devices(client, space, tokens):
    def queries():
        with CaptureQueriesContext(connection) as captured:
            assert client.get("/api/v1/org/devices", {"q": "hub"}, **bearer(tokens[Role.VIEWER])).status_code == 200
        return len(captured)

    ClaimedDeviceFactory(space=space, name="hub")
    queries()  # the token's first use writes its "last used"
    few = queries()
    ClaimedDeviceFactory.create_batch(20, space=space, name="hub")
    assert queries() == few


def test_another_organization_s_devices_are_not_listed(client, device, outsider):
    token = api_token(outsider.memberships.get().organization, Role.VIEWER)[1]
    assert client.get("/api/v1/org/devices", **bearer(token)).json() == {"devices": [], "next_cursor": None}


def test_an_admin_token_moves_a_device_and_the_audit_log_names_the_token(client, organization, device, tokens):
    target = SpaceFactory(organization=organization, name="Store")
    response = call(
        client, "post", f"/api/v1/org/devices/{device.code}/move", tokens[Role.ADMIN], {"space": str(target.code)}
    )
    assert response.status_code == 200, response.json()
    assert response.json()["space"] == {"id": str(target.code), "name": "Store"}
    entry = AuditEntry.objects.get(action=AuditEntry.Action.DEVICE_MOVED)
    assert entry.actor.full_name == f"API token “{Role.ADMIN}”"


def test_moving_to_another_organization_s_space_is_404(client, device, tokens, outsider):
    their_space = SpaceFactory(organization=outsider.memberships.get().organization)
    response = call(
        client, "post", f"/api/v1/org/devices/{device.code}/move", tokens[Role.ADMIN], {"space": str(their_space.code)}
    )
    assert response.status_code == 404
    device.refresh_from_db()
    assert device.space != their_space


def test_an_operator_token_sends_a_command_answered_201_with_the_command(client, device, tokens):
    response = call(
        client,
        "post",
        f"/api/v1/org/devices/{device.code}/commands",
        tokens[Role.OPERATOR],
        {"name": "identify", "arguments": {"seconds": 5}},
    )
    assert response.status_code == 201, response.json()
    command = Command.objects.get(device=device)
    assert response.json() == {
        "id": str(command.code),
        "name": "identify",
        "arguments": {"seconds": 5},
        "status": "queued",
        "created_at": response.json()["created_at"],
    }
    assert command.created_by.api_token.role == Role.OPERATOR


def test_a_command_the_model_does_not_have_or_bad_arguments_are_400_with_the_rule_s_message(client, device, tokens):
    url = f"/api/v1/org/devices/{device.code}/commands"
    unknown = call(client, "post", url, tokens[Role.OPERATOR], {"name": "self_destruct"})
    assert unknown.status_code == 400
    assert unknown.json()["error"] == {
        "code": "invalid_command",
        "message": f"{device.device_model.name} has no command 'self_destruct'.",
    }
    bad = call(client, "post", url, tokens[Role.OPERATOR], {"name": "identify", "arguments": {"seconds": 9999}})
    assert bad.status_code == 400
    assert bad.json()["error"]["code"] == "invalid_command"
    assert not Command.objects.exists()


def test_a_viewer_token_may_not_send_commands_or_configure(client, device, tokens):
    url = f"/api/v1/org/devices/{device.code}"
    assert call(client, "post", f"{url}/commands", tokens[Role.VIEWER], {"name": "reboot"}).status_code == 403
    assert call(client, "put", f"{url}/configuration", tokens[Role.VIEWER], {"values": {}}).status_code == 403
    assert not Command.objects.exists()


def test_saving_a_configuration_answers_its_version_and_the_same_values_make_no_new_one(client, device, tokens):
    url = f"/api/v1/org/devices/{device.code}/configuration"
    first = call(client, "put", url, tokens[Role.OPERATOR], {"values": {"volume": 10}})
    assert first.status_code == 200, first.json()
    assert first.json()["version"] == 1
    assert first.json()["values"]["volume"] == 10
    assert call(client, "put", url, tokens[Role.OPERATOR], {"values": {"volume": 10}}).json()["version"] == 1
    assert call(client, "put", url, tokens[Role.OPERATOR], {"values": {"volume": 11}}).json()["version"] == 2


def test_a_configuration_the_model_refuses_is_400_with_each_setting_s_message(client, device, tokens):
    url = f"/api/v1/org/devices/{device.code}/configuration"
    response = call(client, "put", url, tokens[Role.OPERATOR], {"values": {"volume": 1000, "time_zone": "Mars"}})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_configuration"
    assert set(error["fields"]) == {"volume", "time_zone"}


def test_release_asks_for_the_device_s_name_then_releases_it(client, device, tokens):
    url = f"/api/v1/org/devices/{device.code}/release"
    wrong = call(client, "post", url, tokens[Role.ADMIN], {"confirm_name": "Another hub"})
    assert wrong.status_code == 400
    assert "confirm_name" in wrong.json()["error"]["fields"]
    assert Device.objects.get(pk=device.pk).status == Device.Status.CLAIMED
    response = call(client, "post", url, tokens[Role.ADMIN], {"confirm_name": "Lobby hub"})
    assert response.status_code == 204
    assert Device.objects.get(pk=device.pk).organization is None
    assert call(client, "get", f"/api/v1/org/devices/{device.code}", tokens[Role.ADMIN]).status_code == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "reboot", "colour": "red"}, "colour"),
        ({"name": 7}, "name"),
        ({"name": "reboot", "arguments": []}, "arguments"),
        ({}, "name"),
        ([], "body"),
    ],
)
def test_unknown_fields_and_wrong_types_are_400_invalid_request_with_fields(client, device, tokens, body, field):
    response = call(client, "post", f"/api/v1/org/devices/{device.code}/commands", tokens[Role.ADMIN], body)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_request"
    assert field in response.json()["error"]["fields"], response.json()


def test_malformed_json_a_wrong_content_type_and_a_huge_body_are_refused_in_the_error_shape(
    client, device, tokens, settings
):
    url = f"/api/v1/org/devices/{device.code}/commands"
    headers = bearer(tokens[Role.ADMIN])
    for data, content_type in (
        ('{"name": "reboot"', "application/json"),
        (b"\xff\xfe", "application/json"),
        ("name=reboot", "application/x-www-form-urlencoded"),
        ("name: reboot", "text/plain"),
    ):
        response = client.post(url, data=data, content_type=content_type, **headers)
        assert response.status_code == 400, (data, response.content)
        assert response.json()["error"]["code"] == "invalid_request"
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    huge = client.post(
        url,
        data=json.dumps({"name": "reboot", "arguments": {"x": "y" * 2000}}),
        content_type="application/json",
        **headers,
    )
    assert huge.status_code == 413
    assert huge.json()["error"]["code"] == "too_large"
    assert not Command.objects.exists()


def test_a_token_past_its_rate_gets_429_with_retry_after(client, tokens, settings, fresh_throttle):
    settings.ORG_API_RATE_PER_TOKEN = 3
    answers = [client.get("/api/v1/org/spaces", **bearer(tokens[Role.VIEWER])) for _ in range(4)]
    assert [answer.status_code for answer in answers] == [200, 200, 200, 429]
    assert answers[-1].json()["error"]["code"] == "rate_limited"
    assert 0 < int(answers[-1]["Retry-After"]) <= 60
    assert client.get("/api/v1/org/spaces", **bearer(tokens[Role.ADMIN])).status_code == 200, "per token"


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=10), children, max_size=3),
    max_leaves=10,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    path=st.sampled_from(["move", "commands", "configuration", "release"]),
    body=JSON_VALUES
    | st.fixed_dictionaries(
        {},
        optional={
            "name": JSON_VALUES,
            "arguments": JSON_VALUES,
            "values": JSON_VALUES,
            "space": JSON_VALUES,
            "confirm_name": JSON_VALUES,
        },
    ),
)
def test_no_body_makes_a_call_answer_500(client, device, tokens, path, body):
    method = "put" if path == "configuration" else "post"
    response = call(client, method, f"/api/v1/org/devices/{device.code}/{path}", tokens[Role.ADMIN], body)
    assert response.status_code < 500, (body, response.content)
    if response.status_code >= 400:
        assert set(response.json()["error"]) >= {"code", "message"}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=st.lists(JSON_VALUES | st.text(), min_size=0, max_size=4), sort=st.sampled_from(["name", "-last_seen"]))
def test_a_forged_cursor_is_400_never_500(client, device, tokens, values, sort):
    import base64

    cursor = base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")
    response = client.get("/api/v1/org/devices", {"cursor": cursor, "sort": sort}, **bearer(tokens[Role.VIEWER]))
    assert response.status_code in (200, 400), response.content


@pytest.mark.parametrize("url", ["/api/v1/org/devices", "/api/v1/org/spaces", "/api/v1/org/devices/{code}"])
def test_a_query_parameter_the_call_does_not_take_is_400_naming_it(client, device, tokens, url):
    response = call(client, "get", url.format(code=device.code) + "?stauts=claimed&q=", tokens[Role.VIEWER])
    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == "invalid_request"
    assert set(response.json()["error"]["fields"]) == {"stauts"} | (
        {"q"} if "{code}" in url or "spaces" in url else set()
    )
