"""The outbox: each rule writes its event in its own transaction, for the subscribed endpoints of
the device's organization only, set-based, and nothing for an organization without endpoints."""

import base64
import secrets
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.models import Role
from devices.actions import release_device
from devices.authentication import authenticate_device
from devices.claims import claim_device
from devices.commands import report_command_result, send_command
from devices.heartbeat_intake import write_buffered_heartbeats
from devices.keys import hash_device_key
from devices.models import Device
from devices.telemetry import record_connectivity_changes, record_heartbeat
from webhooks.models import Delivery, Event
from webhooks.outbox import record_device_events

from .conftest import CAMERA_CODE
from .factories import ActivatedDeviceFactory, ClaimedDeviceFactory, MembershipFactory, webhook_endpoint

URL = "https://hooks.example.com/portal"


def _events(name):
    return list(Event.objects.filter(event=name))


def _claim(unit, space, owner):
    return claim_device(
        space=space,
        device_model=unit.device_model,
        identifiers={"serial_number": unit.identifier_1},
        claim_code=CAMERA_CODE,
        name="Door camera",
        actor=owner,
    )


def test_a_claim_writes_device_claimed_with_the_device_as_the_api_shows_it(organization, space, owner, unit):
    endpoint, _ = webhook_endpoint(organization, URL)
    device = _claim(unit, space, owner)

    [event] = _events("device.claimed")
    assert event.organization_id == organization.pk
    assert event.data["id"] == str(device.code)
    assert event.data["name"] == "Door camera"
    assert event.data["space"] == {"id": str(space.code), "name": space.name}
    assert event.data["model"]["slug"] == unit.device_model.slug
    assert event.data["identifiers"]["serial_number"] == unit.identifier_1
    assert Delivery.objects.get().endpoint == endpoint


def test_a_bulk_claim_writes_device_claimed_for_each_device_it_claims(organization, space, owner, device_model):
    from devices.bulk_claims import ClaimRow, claim_devices

    from .factories import ApprovedIdentityFactory

    webhook_endpoint(organization, URL)
    units = ApprovedIdentityFactory.create_batch(3, device_model=device_model)
    rows = [ClaimRow(line, space, device_model, unit.identifiers, f"Hub {line}") for line, unit in enumerate(units, 2)]
    report = claim_devices(rows, organization=organization, actor=owner)
    assert len(report.devices) == 3
    assert sorted(event.data["name"] for event in _events("device.claimed")) == ["Hub 2", "Hub 3", "Hub 4"]


def test_a_rolled_back_claim_writes_no_event(organization, space, owner, unit):
    webhook_endpoint(organization, URL)

    def claim_then_fail():
        with transaction.atomic():
            _claim(unit, space, owner)
            raise RuntimeError("the caller's transaction fails after the claim")

    with pytest.raises(RuntimeError):
        claim_then_fail()

    assert not Event.objects.exists()
    assert not Delivery.objects.exists()


def test_an_endpoint_gets_only_the_events_it_subscribes_to(organization, space, owner, unit):
    webhook_endpoint(organization, URL, events=["device.released"])
    device = _claim(unit, space, owner)
    assert not Event.objects.exists()

    release_device(device, actor=owner)

    [event] = _events("device.released")
    # As the organization last held it, before the release emptied it.
    assert (event.organization_id, event.data["name"], event.data["space"]["name"]) == (
        organization.pk,
        "Door camera",
        space.name,
    )


def test_a_disabled_endpoint_gets_no_event(organization, space, owner, unit):
    endpoint, _ = webhook_endpoint(organization, URL)
    endpoint.enabled = False
    endpoint.save()

    _claim(unit, space, owner)

    assert not Event.objects.exists()


def test_an_organization_without_endpoints_pays_one_query(space):
    device = ClaimedDeviceFactory(space=space)
    webhook_endpoint(MembershipFactory(role=Role.OWNER).organization, URL)

    with CaptureQueriesContext(connection) as queries:
        assert record_device_events("device.moved", [device]) == 0

    assert len(queries) == 1


def test_the_connectivity_sweep_writes_offline_events_in_a_constant_number_of_statements(
    organization, space, device_model
):
    webhook_endpoint(organization, URL)
    webhook_endpoint(organization, URL + "/second", events=["device.offline"])
    long_ago = timezone.now() - timedelta(days=1)

    def sweep(devices):
        ActivatedDeviceFactory.create_batch(
            devices, space=space, identity__device_model=device_model, online=True, last_seen_at=long_ago
        )
        with CaptureQueriesContext(connection) as queries:
            record_connectivity_changes()
        return len(queries)

    few = sweep(3)
    many = sweep(40)

    assert len(_events("device.offline")) == 43
    assert Delivery.objects.count() == 86
    assert many == few
    assert all(event.data["online"] is False for event in _events("device.offline"))


def test_a_device_back_online_writes_device_online(organization, space):
    webhook_endpoint(organization, URL)
    device = ActivatedDeviceFactory(space=space, online=False, last_seen_at=timezone.now() - timedelta(days=1))

    record_heartbeat(Device.objects.get(pk=device.pk), metrics={})
    write_buffered_heartbeats()
    record_heartbeat(Device.objects.get(pk=device.pk), metrics={})
    write_buffered_heartbeats()

    [event] = _events("device.online")
    assert event.data["online"] is True


def test_a_heartbeat_reporting_a_new_configuration_writes_config_applied_once(organization, space):
    webhook_endpoint(organization, URL)
    device = ActivatedDeviceFactory(space=space, online=True, last_seen_at=timezone.now())

    for _ in range(2):
        record_heartbeat(Device.objects.get(pk=device.pk), metrics={}, config_version=3)
        write_buffered_heartbeats()

    [event] = _events("config.applied")
    assert (event.data["id"], event.data["config_version"]) == (str(device.code), 3)


def test_a_command_result_writes_command_finished_with_the_command(organization, space, owner):
    webhook_endpoint(organization, URL)
    device = ActivatedDeviceFactory(space=space)
    command = send_command(device, name="reboot", arguments={}, actor=owner)

    report_command_result(device, command_code=command.code, succeeded=True, output="rebooted")

    [event] = _events("command.finished")
    assert event.data["id"] == str(device.code)
    assert event.data["command"] == {
        "id": str(command.code),
        "name": "reboot",
        "status": "succeeded",
        "output": "rebooted",
    }


def test_a_steady_heartbeat_of_an_organization_with_endpoints_costs_one_read_and_writes_no_event(
    organization, space, django_assert_num_queries
):
    webhook_endpoint(organization, URL)
    key = secrets.token_bytes(32)
    ActivatedDeviceFactory(
        space=space, key_hash=hash_device_key(key), online=True, last_seen_at=timezone.now(), applied_config_version=3
    )
    device = authenticate_device(base64.urlsafe_b64encode(key).rstrip(b"=").decode())

    # Read what waits; the writer marks it seen and keeps the metrics: nothing for the webhooks to write.
    with django_assert_num_queries(1):
        record_heartbeat(device, metrics={}, config_version=3)
    write_buffered_heartbeats()
    assert not Event.objects.exists()
