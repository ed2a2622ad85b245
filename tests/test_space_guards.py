"""Space rules check their guards on the rows they lock, not on the caller's copy of the space."""

import pytest

from accounts.models import AuditEntry
from devices.actions import move_device
from devices.models import Device, DeviceEvent
from spaces.actions import SpaceActionError, delete_space, rename_space
from spaces.models import Space

from .factories import ClaimedDeviceFactory, SpaceFactory
from .racing import race


def _copy(space):
    return Space.objects.get(pk=space.pk)


def _renames(organization):
    return list(
        AuditEntry.objects.filter(organization=organization, action=AuditEntry.Action.SPACE_RENAMED)
        .order_by("id")
        .values_list("details", flat=True)
    )


@pytest.mark.django_db
def test_a_rename_records_the_name_the_space_had_when_it_was_locked(space, owner):
    stale = _copy(space)
    rename_space(_copy(space), name="Lobby", actor=owner)
    rename_space(stale, name="Atrium", actor=owner)
    assert [(entry["from"], entry["to"]) for entry in _renames(space.organization)] == [
        (space.name, "Lobby"),
        ("Lobby", "Atrium"),
    ]


@pytest.mark.django_db
def test_renaming_to_the_name_another_request_just_gave_records_nothing(space, owner):
    stale = _copy(space)
    rename_space(_copy(space), name="Lobby", actor=owner)
    rename_space(stale, name="Lobby", actor=owner)
    assert len(_renames(space.organization)) == 1


@pytest.mark.django_db
def test_renaming_a_space_deleted_meanwhile_is_refused(space, owner):
    stale = _copy(space)
    delete_space(_copy(space), actor=owner)
    with pytest.raises(SpaceActionError, match="deleted meanwhile"):
        rename_space(stale, name="Lobby", actor=owner)


@pytest.mark.django_db
def test_deleting_into_a_space_deleted_meanwhile_is_refused_and_keeps_everything(space, owner):
    device = ClaimedDeviceFactory(space=space, organization=space.organization)
    target = SpaceFactory(organization=space.organization, name="Lobby")
    stale_target = _copy(target)
    delete_space(_copy(target), actor=owner)
    with pytest.raises(SpaceActionError, match="“Lobby” was deleted meanwhile"):
        delete_space(space, actor=owner, move_devices_to=stale_target)
    assert Space.objects.filter(pk=space.pk).exists()
    assert Device.objects.get(pk=device.pk).space == space


@pytest.mark.django_db
def test_deleting_a_space_someone_just_deleted_does_nothing_more(space, owner):
    stale = _copy(space)
    delete_space(_copy(space), actor=owner)
    delete_space(stale, actor=owner)
    deletions = AuditEntry.objects.filter(organization=space.organization, action=AuditEntry.Action.SPACE_DELETED)
    assert deletions.count() == 1


@pytest.mark.django_db(transaction=True)
def test_deleting_a_space_moves_only_the_devices_still_in_it_when_it_locks_them(space, owner):
    lobby = SpaceFactory(organization=space.organization, name="Lobby")
    hall = SpaceFactory(organization=space.organization, name="Hall")
    leaving = ClaimedDeviceFactory(space=space, organization=space.organization)
    staying = ClaimedDeviceFactory(space=space, organization=space.organization)
    copy = Device.objects.get(pk=leaving.pk)

    first, second, overlapped = race(
        lambda: move_device(copy, space=lobby, actor=owner),
        lambda: delete_space(_copy(space), actor=owner, move_devices_to=hall),
    )

    assert overlapped
    assert not isinstance(first, Exception), first
    assert not isinstance(second, Exception), second
    assert not Space.objects.filter(pk=space.pk).exists()
    assert Device.objects.get(pk=leaving.pk).space == lobby
    assert Device.objects.get(pk=staying.pk).space == hall
    moves = DeviceEvent.objects.filter(device=leaving, kind=DeviceEvent.Kind.MOVED).values_list("details", flat=True)
    assert [(move["from"], move["to"]) for move in moves] == [(space.name, "Lobby")]
