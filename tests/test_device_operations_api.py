"""The device side of commands and configuration, with a key really derived at activation."""

import json

import pytest
from django.core.cache import cache

from devices.commands import send_command
from devices.configuration import save_configuration
from devices.heartbeat_intake import write_buffered_heartbeats
from devices.models import Command, Device, DeviceEvent, Heartbeat
from devices.simulator import SimulatedDevice
from vendors.attestation import b64url_encode

from .factories import ApprovedIdentityFactory, SpaceFactory
from .test_device_activation import activate, unit_of

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fresh_rate_limits():
    cache.clear()


@pytest.fixture
def unit(client, django_capture_on_commit_callbacks, owner, space):
    """An activated unit (the simulator holds its derived key), claimed into `space`."""
    from devices.claims import claim_device

    identity = ApprovedIdentityFactory(device_model=space.organization.connected_vendors.get().device_models.get())
    device = SimulatedDevice(unit_of(identity))
    device.finish_activation(activate(client, device, django_capture_on_commit_callbacks))
    stored = claim_device(
        space=space, device_model=identity.device_model, identifiers=identity.identifiers, name="Hub", actor=owner
    )
    return device, stored


def call(client, method, path, device=None, body=None, key=None):
    headers = {}
    if device is not None or key is not None:
        headers["Authorization"] = f"Bearer {key or b64url_encode(device.device_key)}"
    if method == "GET":
        return client.get(path, headers=headers)
    return client.post(path, json.dumps(body).encode(), content_type="application/json", headers=headers)


def test_device_fetches_a_command_and_reports_its_success(client, unit, owner):
    device, stored = unit
    command = send_command(stored, name="identify", arguments={"seconds": 5}, actor=owner)
    fetched = call(client, "GET", "/api/v1/device/commands", device).json()["commands"]
    assert [(c["id"], c["name"], c["arguments"], c["status"]) for c in fetched] == [
        (str(command.code), "identify", {"seconds": 5}, "queued")
    ]
    command.refresh_from_db()
    assert command.status == Command.Status.DELIVERED
    path = f"/api/v1/device/commands/{command.code}/result"
    reported = call(client, "POST", path, device, {"status": "succeeded", "output": "blinked"})
    assert reported.status_code == 200
    assert reported.json()["command"]["status"] == "succeeded"
    again = call(client, "POST", path, device, {"status": "failed"})
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "already_final"


def test_heartbeat_says_what_waits_and_records_the_applied_version(client, unit, owner):
    device, stored = unit
    save_configuration(stored, values={"volume": 70, "display_name": "Hall", "time_zone": "UTC"}, actor=owner)
    send_command(stored, name="reboot", arguments={}, actor=owner)
    answer = call(client, "POST", "/api/v1/device/heartbeat", device, {"metrics": {"cpu": 3}, "config_version": 0})
    assert answer.status_code == 200
    assert answer.json()["commands_pending"] is True
    assert answer.json()["config_version"] == 1
    config = call(client, "GET", "/api/v1/device/config", device).json()
    assert config == {"version": 1, "config": {"volume": 70, "display_name": "Hall", "time_zone": "UTC"}}
    call(client, "POST", "/api/v1/device/heartbeat", device, {"metrics": {}, "config_version": 1})
    write_buffered_heartbeats()
    assert Device.objects.get(pk=stored.pk).applied_config_version == 1
    assert Heartbeat.objects.filter(device=stored).count() == 2


def test_another_devices_command_is_not_found(client, unit, owner, django_capture_on_commit_callbacks):
    device, stored = unit
    other = SimulatedDevice(unit_of(ApprovedIdentityFactory(device_model=stored.device_model)))
    other.finish_activation(activate(client, other, django_capture_on_commit_callbacks))
    command = send_command(stored, name="reboot", arguments={}, actor=owner)
    response = call(client, "POST", f"/api/v1/device/commands/{command.code}/result", other, {"status": "succeeded"})
    assert response.status_code == 404
    assert call(client, "GET", "/api/v1/device/commands", other).json() == {"commands": []}


@pytest.mark.parametrize(
    ("path", "method"),
    [("/api/v1/device/commands", "GET"), ("/api/v1/device/config", "GET"), ("/api/v1/device/heartbeat", "POST")],
)
def test_a_wrong_key_gets_401_without_a_hint(client, unit, path, method):
    response = call(client, method, path, key="A" * 43, body={"metrics": {}})
    assert response.status_code == 401
    assert response.json() == {"error": {"code": "unauthorized", "message": "Authentication failed."}}


@pytest.mark.parametrize(
    "body",
    [{}, {"status": "done"}, {"status": "succeeded", "output": 5}, {"status": "failed", "extra": 1}],
)
def test_a_malformed_result_is_a_400_with_fields(client, unit, owner, body):
    device, stored = unit
    command = send_command(stored, name="reboot", arguments={}, actor=owner)
    response = call(client, "POST", f"/api/v1/device/commands/{command.code}/result", device, body)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_request"
    assert response.json()["error"]["fields"]


def test_a_malformed_config_version_is_a_400(client, unit):
    device, _ = unit
    response = call(client, "POST", "/api/v1/device/heartbeat", device, {"metrics": {}, "config_version": -1})
    assert response.status_code == 400
    assert "config_version" in response.json()["error"]["fields"]


def test_after_a_release_and_a_new_claim_the_old_key_reaches_nothing(client, unit, owner, outsider):
    from devices.actions import release_device
    from devices.claims import claim_device

    device, stored = unit
    send_command(stored, name="reboot", arguments={}, actor=owner)
    save_configuration(stored, values={"volume": 1, "display_name": "Old", "time_zone": "UTC"}, actor=owner)
    call(client, "POST", "/api/v1/device/heartbeat", device, {"metrics": {"cpu": 1}, "config_version": 1})
    write_buffered_heartbeats()
    release_device(stored, actor=owner)
    new_space = outsider.memberships.get().organization.spaces.first() or SpaceFactory()
    claimed = claim_device(
        space=new_space,
        device_model=stored.device_model,
        identifiers=stored.identity.identifiers,
        name="Mine now",
        actor=outsider,
    )
    send_command(claimed, name="reboot", arguments={}, actor=outsider)
    save_configuration(claimed, values={"volume": 2, "display_name": "New", "time_zone": "UTC"}, actor=outsider)
    answers = [
        call(client, "POST", "/api/v1/device/heartbeat", device, {"metrics": {"cpu": 2}}),
        call(client, "GET", "/api/v1/device/commands", device),
        call(
            client,
            "POST",
            f"/api/v1/device/commands/{claimed.commands.get().code}/result",
            device,
            {"status": "failed"},
        ),
        call(client, "GET", "/api/v1/device/config", device),
    ]
    assert [answer.status_code for answer in answers] == [401] * 4
    assert claimed.commands.get().status == "queued"
    assert not claimed.heartbeats.exists()
    assert list(claimed.events.values_list("kind", flat=True)) == ["configuration_changed", "command_sent", "claimed"]


def test_a_heartbeat_costs_the_same_few_queries_whatever_waits(client, unit, owner, django_assert_max_num_queries):
    device, stored = unit
    for _ in range(5):
        send_command(stored, name="reboot", arguments={}, actor=owner)
    call(client, "POST", "/api/v1/device/heartbeat", device, {"metrics": {"cpu": 1}})  # back online: one event more
    # Authentication, which reads what waits too: the heartbeat itself goes to the intake stream.
    with django_assert_max_num_queries(1):
        answer = call(client, "POST", "/api/v1/device/heartbeat", device, {"metrics": {"cpu": 2}, "config_version": 0})
    assert answer.json()["commands_pending"] is True


def test_a_heartbeat_over_the_api_from_a_device_marked_offline_writes_back_online(client, unit):
    device, stored = unit
    Device.objects.filter(pk=stored.pk).update(online=False)
    assert call(client, "POST", "/api/v1/device/heartbeat", device, {"metrics": {}}).status_code == 200
    write_buffered_heartbeats()
    assert Device.objects.get(pk=stored.pk).online
    assert list(stored.events.filter(kind=DeviceEvent.Kind.BACK_ONLINE).values_list("kind", flat=True)) == [
        DeviceEvent.Kind.BACK_ONLINE
    ]
    assert call(client, "POST", "/api/v1/device/heartbeat", device, {"metrics": {}}).status_code == 200
    write_buffered_heartbeats()
    assert stored.events.filter(kind=DeviceEvent.Kind.BACK_ONLINE).count() == 1, "an online device does not come back"
