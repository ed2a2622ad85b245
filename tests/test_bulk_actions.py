"""Bulk actions on the space dashboard: select devices, move them or send them one command."""

import pytest
from django.urls import reverse

from devices.models import Command, Device, DeviceEvent

from .factories import ClaimedDeviceFactory, SpaceFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def devices(space, device_model):
    return [ClaimedDeviceFactory(space=space, identity__device_model=device_model) for _ in range(3)]


@pytest.fixture
def lobby(space):
    return SpaceFactory(organization=space.organization, name="Lobby")


def bulk(client, dashboard_space, **data):
    return client.post(reverse("space-bulk-action", kwargs={"code": dashboard_space.code}), data)


def test_selected_devices_move_to_another_space_with_an_event_each(client, space, devices, lobby, owner):
    client.force_login(owner)
    response = bulk(client, space, action="move", space=str(lobby.code), devices=[str(d.code) for d in devices[:2]])
    assert response.status_code == 302
    assert set(Device.objects.filter(space=lobby)) == set(devices[:2])
    assert DeviceEvent.objects.filter(kind=DeviceEvent.Kind.MOVED).count() == 2


def test_one_command_is_queued_for_every_selected_device(client, space, devices, operator):
    client.force_login(operator)
    bulk(client, space, action="command", command="identify", devices=[str(d.code) for d in devices])
    assert Command.objects.filter(name="identify", arguments={"seconds": 30}).count() == 3


def test_commands_needing_an_argument_are_not_offered_in_bulk(client, space, devices, operator):
    client.force_login(operator)
    page = client.get(reverse("space-dashboard", kwargs={"code": space.code}))
    offered = [name for name, _ in page.context["bulk_form"].fields["command"].choices]
    assert offered == ["identify", "reboot"]
    bulk(client, space, action="command", command="firmware_update", devices=[str(devices[0].code)])
    assert not Command.objects.exists()


def test_an_operator_may_not_move_devices(client, space, devices, lobby, operator):
    client.force_login(operator)
    assert bulk(client, space, action="move", space=str(lobby.code), devices=[str(devices[0].code)]).status_code == 403
    assert not Device.objects.filter(space=lobby).exists()


def test_a_viewer_gets_no_bulk_bar_and_403(client, space, devices, viewer):
    client.force_login(viewer)
    page = client.get(reverse("space-dashboard", kwargs={"code": space.code}))
    assert page.context["bulk_form"] is None
    assert bulk(client, space, action="command", command="reboot", devices=[str(devices[0].code)]).status_code == 403


def test_a_device_of_another_space_cannot_be_slipped_into_the_selection(client, space, devices, lobby, owner):
    elsewhere = ClaimedDeviceFactory(space=lobby)
    client.force_login(owner)
    bulk(client, space, action="command", command="reboot", devices=[str(devices[0].code), str(elsewhere.code)])
    assert not Command.objects.exists()


def test_moving_into_another_organizations_space_is_refused(client, space, devices, owner):
    foreign = SpaceFactory()
    client.force_login(owner)
    bulk(client, space, action="move", space=str(foreign.code), devices=[str(devices[0].code)])
    devices[0].refresh_from_db()
    assert devices[0].space == space
