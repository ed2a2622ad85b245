"""Spaces: created, renamed and deleted by owners and admins; deleted only when empty or after
moving their devices to another space."""

import pytest
from django.urls import reverse

from accounts.models import AuditEntry
from devices.models import Device, DeviceEvent
from spaces.actions import SpaceActionError, SpaceNotEmpty, create_space, delete_space, rename_space
from spaces.models import Space

from .factories import ClaimedDeviceFactory, SpaceFactory

pytestmark = pytest.mark.django_db


def test_an_admin_creates_a_space_from_the_overview(client, organization, admin_member):
    client.force_login(admin_member)
    overview = client.get(reverse("organization-overview", args=[organization.code]))
    assert reverse("space-create", args=[organization.code]) in overview.text
    response = client.post(reverse("space-create", args=[organization.code]), {"name": "  Lobby  "})
    space = Space.objects.get(organization=organization, name="Lobby")
    assert response["Location"] == reverse("space-dashboard", args=[space.code])
    assert AuditEntry.objects.get(action=AuditEntry.Action.SPACE_CREATED).target == "Lobby"


def test_an_operator_may_not_create_spaces_and_sees_no_button(client, organization, operator):
    client.force_login(operator)
    overview = client.get(reverse("organization-overview", args=[organization.code]))
    assert reverse("space-create", args=[organization.code]) not in overview.text
    assert client.post(reverse("space-create", args=[organization.code]), {"name": "Lobby"}).status_code == 403
    assert not Space.objects.filter(name="Lobby").exists()


def test_a_duplicate_name_is_a_field_error_that_keeps_the_input(client, space, owner):
    client.force_login(owner)
    response = client.post(reverse("space-create", args=[space.organization.code]), {"name": space.name})
    assert response.status_code == 200
    assert "There is already a space named" in response.text
    assert f'value="{space.name}"' in response.text


def test_two_organizations_may_use_the_same_space_name(space, outsider):
    other_organization = outsider.memberships.get().organization
    assert create_space(other_organization, name=space.name, actor=outsider).organization == other_organization


def test_renaming_a_space_to_a_taken_name_is_refused(space, owner):
    SpaceFactory(organization=space.organization, name="Taken")
    with pytest.raises(SpaceActionError, match="already a space named"):
        rename_space(space, name="Taken", actor=owner)


def test_renaming_through_the_settings_page(client, space, owner):
    client.force_login(owner)
    client.post(reverse("space-settings", args=[space.code]), {"name": "Auditorium"})
    space.refresh_from_db()
    assert space.name == "Auditorium"
    assert AuditEntry.objects.get(action=AuditEntry.Action.SPACE_RENAMED).details["to"] == "Auditorium"


def test_the_dashboard_links_settings_for_managers_only(client, space, owner, viewer):
    settings_url = reverse("space-settings", args=[space.code])
    client.force_login(owner)
    assert settings_url in client.get(reverse("space-dashboard", args=[space.code])).text
    client.force_login(viewer)
    assert settings_url not in client.get(reverse("space-dashboard", args=[space.code])).text
    assert client.get(settings_url).status_code == 403


def test_an_empty_space_is_deleted(client, space, owner):
    client.force_login(owner)
    response = client.post(reverse("space-delete", args=[space.code]))
    assert response["Location"] == reverse("organization-overview", args=[space.organization.code])
    assert not Space.objects.filter(pk=space.pk).exists()
    assert AuditEntry.objects.get(action=AuditEntry.Action.SPACE_DELETED).target == space.name


def test_a_space_with_devices_is_not_deleted_without_a_destination(space, owner):
    ClaimedDeviceFactory(space=space)
    with pytest.raises(SpaceNotEmpty, match="still has 1 device"):
        delete_space(space, actor=owner)
    assert Space.objects.filter(pk=space.pk).exists()


def test_the_delete_page_asks_where_to_move_the_devices_and_requires_it(client, space, owner):
    ClaimedDeviceFactory.create_batch(2, space=space)
    destination = SpaceFactory(organization=space.organization, name="Storage")
    client.force_login(owner)
    page = client.get(reverse("space-delete", args=[space.code]))
    assert "This space has 2 devices" in page.text
    assert "Storage" in page.text
    response = client.post(reverse("space-delete", args=[space.code]), {})
    assert response.status_code == 200
    assert "This field is required" in response.text
    assert Space.objects.filter(pk=space.pk).exists()
    assert destination.devices.count() == 0


def test_deleting_with_a_destination_moves_each_device_with_history_then_deletes(client, space, owner):
    devices = ClaimedDeviceFactory.create_batch(3, space=space)
    destination = SpaceFactory(organization=space.organization, name="Storage")
    client.force_login(owner)
    client.post(reverse("space-delete", args=[space.code]), {"move_devices_to": destination.pk})
    assert not Space.objects.filter(pk=space.pk).exists()
    assert set(destination.devices.all()) == set(devices)
    assert DeviceEvent.objects.filter(kind=DeviceEvent.Kind.MOVED, space=destination).count() == 3
    assert AuditEntry.objects.filter(action=AuditEntry.Action.DEVICE_MOVED).count() == 3
    assert Device.objects.filter(status=Device.Status.CLAIMED).count() == 3


def test_devices_cannot_be_moved_to_another_organizations_space(space, owner, outsider):
    ClaimedDeviceFactory(space=space)
    foreign = outsider.memberships.get().organization.spaces.get()
    with pytest.raises(SpaceActionError, match="another space of this organization"):
        delete_space(space, actor=owner, move_devices_to=foreign)


def test_posting_another_organizations_space_as_destination_is_a_field_error(client, space, owner, outsider):
    ClaimedDeviceFactory(space=space)
    foreign = outsider.memberships.get().organization.spaces.get()
    client.force_login(owner)
    response = client.post(reverse("space-delete", args=[space.code]), {"move_devices_to": foreign.pk})
    assert response.status_code == 200
    assert "Select a valid choice" in response.text
    assert foreign.devices.count() == 0
