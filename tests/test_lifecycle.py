"""The device lifecycle: unregistered -> registered -> claimed, and back on release."""

import pytest

from devices.actions import DeviceActionError, move_device, record_activations, release_device
from devices.claims import claim_device
from devices.models import Device, DeviceEvent

from .factories import ApprovedIdentityFactory, DeviceFactory, SpaceFactory

pytestmark = pytest.mark.django_db


def activated(device, key_hash):
    (device,) = record_activations({device: key_hash})
    return device


def _claim(identity, space, actor, name="Screen on auditorium wall"):
    return claim_device(
        space=space,
        device_model=identity.device_model,
        identifiers={"serial_number": identity.identifier_1, "mac_address": identity.identifier_2},
        name=name,
        actor=actor,
    )


def test_activation_makes_an_unregistered_device_registered():
    device = DeviceFactory()
    device = activated(device, "ab" * 32)
    assert device.status == Device.Status.REGISTERED
    assert device.activated_at is not None
    assert device.events.get().kind == DeviceEvent.Kind.ACTIVATED


def test_claiming_a_never_connected_unit_makes_it_claimed_and_awaiting_first_connection(space, owner):
    identity = ApprovedIdentityFactory(device_model=space.organization.connected_vendors.get().device_models.get())
    device = _claim(identity, space, owner)
    assert device.status == Device.Status.CLAIMED
    assert device.awaiting_first_connection
    assert (device.organization, device.space, device.claimed_by) == (space.organization, space, owner)
    event = device.events.get()
    assert (event.kind, event.actor, event.space) == (DeviceEvent.Kind.CLAIMED, owner, space)


def test_claiming_a_registered_device_keeps_its_activation(space, owner, device_model):
    device = activated(DeviceFactory(identity__device_model=device_model), "cd" * 32)
    claimed = _claim(device.identity, space, owner)
    assert claimed.pk == device.pk
    assert claimed.status == Device.Status.CLAIMED
    assert not claimed.awaiting_first_connection


def test_activation_of_a_claimed_device_keeps_it_claimed(space, owner, device_model):
    device = _claim(ApprovedIdentityFactory(device_model=device_model), space, owner)
    device = activated(device, "ef" * 32)
    assert device.status == Device.Status.CLAIMED
    assert device.activated_at is not None


def test_release_deletes_the_history_and_returns_an_activated_device_to_registered(space, owner, device_model):
    device = activated(DeviceFactory(identity__device_model=device_model), "01" * 32)
    device = _claim(device.identity, space, owner)
    released = release_device(device, actor=owner)
    assert released.status == Device.Status.REGISTERED
    assert not released.has_key
    assert (released.organization, released.space, released.name, released.claimed_by) == (None, None, "", None)
    assert not DeviceEvent.objects.filter(device=device).exists()


def test_release_returns_a_never_connected_device_to_unregistered(space, owner, device_model):
    device = _claim(ApprovedIdentityFactory(device_model=device_model), space, owner)
    assert release_device(device, actor=owner).status == Device.Status.UNREGISTERED


def test_released_device_can_be_claimed_by_another_organization(space, owner, outsider, device_model):
    identity = ApprovedIdentityFactory(device_model=device_model)
    release_device(_claim(identity, space, owner), actor=owner)
    other_space = outsider.memberships.get().organization.spaces.get()
    device = _claim(identity, other_space, outsider, name="Their screen")
    assert device.organization == other_space.organization
    assert list(device.events.values_list("kind", flat=True)) == [DeviceEvent.Kind.CLAIMED]


def test_move_to_another_space_of_the_same_organization_is_recorded(space, owner, device_model):
    device = _claim(ApprovedIdentityFactory(device_model=device_model), space, owner)
    lobby = SpaceFactory(organization=space.organization, name="Lobby")
    move_device(device, space=lobby, actor=owner)
    device.refresh_from_db()
    assert device.space == lobby
    moved = device.events.get(kind=DeviceEvent.Kind.MOVED)
    assert moved.details == {"from": space.name, "to": "Lobby"}


def test_move_to_another_organizations_space_is_refused(space, owner, device_model):
    device = _claim(ApprovedIdentityFactory(device_model=device_model), space, owner)
    with pytest.raises(DeviceActionError):
        move_device(device, space=SpaceFactory(), actor=owner)
    device.refresh_from_db()
    assert device.space == space
