"""The device page and its actions: roles, move, release, commands and configuration forms."""

import pytest
from django.urls import reverse

from accounts.models import Role
from devices.models import Command, ConfigurationVersion, Device, DeviceEvent

from .factories import ClaimedDeviceFactory, MembershipFactory, SpaceFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def device(space):
    return ClaimedDeviceFactory(space=space, name="Screen on auditorium wall")


@pytest.fixture
def lobby(space):
    return SpaceFactory(organization=space.organization, name="Lobby")


def url(name, device):
    return reverse(name, kwargs={"code": device.code})


ACTIONS = {
    # url name: (minimum role, POST data)
    "device-send-command": (Role.OPERATOR, {"command": "reboot"}),
    "device-configuration": (Role.OPERATOR, {"volume": "40", "display_name": "Hall", "time_zone": "UTC"}),
    "device-rename": (Role.ADMIN, {"name": "New name"}),
    "device-reactivation": (Role.ADMIN, {}),
    "device-release": (Role.ADMIN, {"confirm_name": "Screen on auditorium wall"}),
}
ORDER = [Role.VIEWER, Role.OPERATOR, Role.ADMIN, Role.OWNER]


@pytest.mark.parametrize("role", ORDER)
@pytest.mark.parametrize("action", sorted(ACTIONS))
def test_role_matrix_over_the_device_actions(client, device, role, action):
    minimum, data = ACTIONS[action]
    client.force_login(MembershipFactory(organization=device.organization, role=role).user)
    response = client.post(url(action, device), data)
    if ORDER.index(role) >= ORDER.index(minimum):
        assert response.status_code == 302, response.content[:500]
    else:
        assert response.status_code == 403


@pytest.mark.parametrize("role", ORDER)
def test_every_member_reads_the_device_page(client, device, role):
    client.force_login(MembershipFactory(organization=device.organization, role=role).user)
    response = client.get(url("device-detail", device))
    assert response.status_code == 200
    assert b"Screen on auditorium wall" in response.content
    assert (b"Release device" in response.content) == (role in (Role.ADMIN, Role.OWNER))


@pytest.mark.parametrize(
    "name", ["device-detail", "device-commands", "device-release", "device-rename", "device-send-command"]
)
def test_another_organizations_device_is_not_found(client, device, outsider, name):
    client.force_login(outsider)
    responses = [client.get(url(name, device)), client.post(url(name, device), {"name": "x", "command": "reboot"})]
    assert 404 in [r.status_code for r in responses]
    assert {r.status_code for r in responses} <= {404, 405}
    device.refresh_from_db()
    assert device.name == "Screen on auditorium wall"


def test_move_to_another_space_of_the_organization(client, device, lobby, owner):
    client.force_login(owner)
    response = client.post(url("device-move", device), {"space": str(lobby.code)})
    assert response.status_code == 302
    device.refresh_from_db()
    assert device.space == lobby
    assert device.events.filter(kind=DeviceEvent.Kind.MOVED).exists()


def test_forged_move_into_another_organizations_space_is_not_found(client, device, owner):
    client.force_login(owner)
    foreign = SpaceFactory()
    assert client.post(url("device-move", device), {"space": str(foreign.code)}).status_code == 404
    device.refresh_from_db()
    assert device.space.organization == device.organization


def test_release_needs_the_device_name_typed(client, device, owner):
    client.force_login(owner)
    page = client.get(url("device-release", device))
    assert b"deleted for good" in page.content
    refused = client.post(url("device-release", device), {"confirm_name": "wrong"})
    assert refused.status_code == 400
    assert b"Type the device name exactly" in refused.content
    device.refresh_from_db()
    assert device.status == Device.Status.CLAIMED


def test_release_deletes_the_history_and_returns_to_the_space(client, device, owner):
    client.force_login(owner)
    space = device.space
    response = client.post(url("device-release", device), {"confirm_name": "Screen on auditorium wall"})
    assert (
        response.redirect_chain
        if hasattr(response, "redirect_chain")
        else response.url == reverse("space-dashboard", kwargs={"code": space.code})
    )
    device.refresh_from_db()
    assert device.organization is None
    assert not device.events.exists()


def test_invalid_command_arguments_keep_what_was_typed(client, device, operator):
    client.force_login(operator)
    response = client.post(url("device-send-command", device), {"command": "identify", "identify-seconds": "999"})
    assert response.status_code == 400
    assert b'value="999"' in response.content
    assert not Command.objects.exists()


def test_configuration_save_makes_a_version_and_shows_desired_against_applied(client, device, operator):
    client.force_login(operator)
    data = {"volume": "40", "display_name": "Hall", "time_zone": "Europe/Paris"}
    client.post(url("device-configuration", device), data)
    assert ConfigurationVersion.objects.get(device=device).values == {
        "volume": 40,
        "display_name": "Hall",
        "time_zone": "Europe/Paris",
    }
    page = client.get(url("device-detail", device))
    assert b'Desired version <strong class="text-body">1</strong>' in page.content
    assert b"not reported yet" in page.content


def test_invalid_configuration_is_refused_with_field_errors(client, device, operator):
    client.force_login(operator)
    response = client.post(
        url("device-configuration", device), {"volume": "101", "display_name": "", "time_zone": "UTC"}
    )
    assert response.status_code == 400
    assert b'value="101"' in response.content
    assert not ConfigurationVersion.objects.exists()


def test_device_page_query_count_does_not_grow_with_history(client, device, owner, django_assert_max_num_queries):
    from devices.commands import send_command
    from devices.telemetry import record_heartbeat

    client.force_login(owner)
    for index in range(30):
        send_command(device, name="reboot", arguments={}, actor=owner)
        record_heartbeat(device, metrics={"cpu": index, "temp": 20})
    with django_assert_max_num_queries(20):
        assert client.get(url("device-detail", device)).status_code == 200
