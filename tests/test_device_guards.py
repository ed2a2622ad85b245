"""Every device rule checks its guards on the row it has locked, not on the caller's copy.

The racing tests run two rules from two threads in real transactions (tests/racing.py), and
assert that they overlapped. The sequential tests hand a rule a copy of the device read before
another change committed, which is what a racing request holds.
"""

import threading

import pytest
from django.db import connection, transaction
from django.utils import timezone

from accounts.models import AuditEntry
from devices.actions import (
    DeviceActionError,
    allow_reactivation,
    lock_in_order,
    move_device,
    move_devices,
    release_device,
    rename_device,
)
from devices.claims import SpaceDeleted, claim_device
from devices.commands import CommandError, send_command
from devices.configuration import save_configuration
from devices.models import Command, ConfigurationVersion, Device, DeviceEvent, Heartbeat
from devices.telemetry import record_heartbeat
from spaces.actions import SpaceNotEmpty, delete_space

from .factories import ApprovedIdentityFactory, DeviceFactory, OrganizationFactory, SpaceFactory
from .racing import race, wait_until_someone_waits_for


def _claimed(space, owner):
    identity = ApprovedIdentityFactory(device_model=space.organization.connected_vendors.get().device_models.get())
    return claim_device(
        space=space,
        device_model=identity.device_model,
        identifiers={"serial_number": identity.identifier_1, "mac_address": identity.identifier_2},
        name="Screen on auditorium wall",
        actor=owner,
    )


def _copy(device):
    """What a request holds: the device as it was read, before anything else happened."""
    return Device.objects.select_related("space", "device_model").get(pk=device.pk)


def _moves(device):
    return list(
        DeviceEvent.objects.filter(device=device, kind=DeviceEvent.Kind.MOVED)
        .order_by("created_at", "id")
        .values_list("details", flat=True)
    )


def _audit(organization):
    return list(AuditEntry.objects.filter(organization=organization).order_by("id").values_list("action", flat=True))


@pytest.fixture
def lobby(space):
    return SpaceFactory(organization=space.organization, name="Lobby")


@pytest.mark.django_db(transaction=True)
def test_two_racing_moves_to_the_same_space_move_the_device_once(space, lobby, owner):
    device = _claimed(space, owner)
    one, other = _copy(device), _copy(device)

    first, second, overlapped = race(
        lambda: move_device(one, space=lobby, actor=owner), lambda: move_device(other, space=lobby, actor=owner)
    )

    assert overlapped
    assert not isinstance(first, Exception), first
    assert not isinstance(second, Exception), second
    assert Device.objects.get(pk=device.pk).space == lobby
    assert [(move["from"], move["to"]) for move in _moves(device)] == [(space.name, "Lobby")]
    assert _audit(space.organization).count(AuditEntry.Action.DEVICE_MOVED) == 1


@pytest.mark.django_db(transaction=True)
def test_two_racing_moves_to_different_spaces_leave_a_history_that_ends_where_the_device_is(space, lobby, owner):
    device = _claimed(space, owner)
    hall = SpaceFactory(organization=space.organization, name="Hall")
    one, other = _copy(device), _copy(device)

    first, second, overlapped = race(
        lambda: move_device(one, space=lobby, actor=owner), lambda: move_device(other, space=hall, actor=owner)
    )

    assert overlapped
    assert Device.objects.get(pk=device.pk).space == hall
    assert [(move["from"], move["to"]) for move in _moves(device)] == [(space.name, "Lobby"), ("Lobby", "Hall")]


@pytest.mark.django_db(transaction=True)
def test_a_move_racing_a_release_is_refused_and_the_device_stays_released(space, lobby, owner):
    device = _claimed(space, owner)
    one, other = _copy(device), _copy(device)

    first, second, overlapped = race(
        lambda: release_device(one, actor=owner), lambda: move_device(other, space=lobby, actor=owner)
    )

    assert overlapped
    assert isinstance(second, DeviceActionError), second
    assert "released" in second.message
    released = Device.objects.get(pk=device.pk)
    assert (released.status, released.organization_id, released.space_id) == (Device.Status.UNREGISTERED, None, None)
    assert not DeviceEvent.objects.filter(device=device).exists()
    assert _audit(space.organization)[-1] == AuditEntry.Action.DEVICE_RELEASED
    assert AuditEntry.Action.DEVICE_MOVED not in _audit(space.organization)


@pytest.mark.django_db(transaction=True)
def test_a_release_racing_a_move_releases_the_moved_device(space, lobby, owner):
    device = _claimed(space, owner)
    one, other = _copy(device), _copy(device)

    first, second, overlapped = race(
        lambda: move_device(one, space=lobby, actor=owner), lambda: release_device(other, actor=owner)
    )

    assert overlapped
    assert not isinstance(second, Exception), second
    released = Device.objects.get(pk=device.pk)
    assert (released.status, released.space_id) == (Device.Status.UNREGISTERED, None)
    assert not DeviceEvent.objects.filter(device=device).exists()
    assert _audit(space.organization)[-2:] == [AuditEntry.Action.DEVICE_MOVED, AuditEntry.Action.DEVICE_RELEASED]


@pytest.mark.django_db(transaction=True)
def test_a_rename_racing_a_release_is_refused_and_leaves_no_trace(space, owner):
    device = _claimed(space, owner)
    one, other = _copy(device), _copy(device)

    first, second, overlapped = race(
        lambda: release_device(one, actor=owner), lambda: rename_device(other, name="Kiosk", actor=owner)
    )

    assert overlapped
    assert isinstance(second, DeviceActionError), second
    released = Device.objects.get(pk=device.pk)
    assert released.name == ""
    assert not DeviceEvent.objects.filter(device=device).exists()
    assert AuditEntry.Action.DEVICE_RENAMED not in _audit(space.organization)


@pytest.mark.django_db
def test_renaming_to_the_name_another_request_just_gave_records_nothing(space, owner):
    device = _claimed(space, owner)
    stale = _copy(device)
    rename_device(_copy(device), name="Kiosk", actor=owner)
    rename_device(stale, name="Kiosk", actor=owner)
    assert DeviceEvent.objects.filter(device=device, kind=DeviceEvent.Kind.RENAMED).count() == 1


@pytest.mark.django_db
def test_a_command_for_a_device_released_meanwhile_is_refused(space, owner):
    device = _claimed(space, owner)
    stale = _copy(device)
    release_device(_copy(device), actor=owner)
    with pytest.raises(CommandError, match="released"):
        send_command(stale, name="reboot", arguments={}, actor=owner)
    assert not Command.objects.exists()
    assert not DeviceEvent.objects.filter(device=device).exists()


@pytest.mark.django_db
def test_a_configuration_for_a_device_released_meanwhile_is_refused(space, owner):
    device = _claimed(space, owner)
    stale = _copy(device)
    release_device(_copy(device), actor=owner)
    with pytest.raises(DeviceActionError, match="released"):
        save_configuration(stale, values={}, actor=owner)
    assert not ConfigurationVersion.objects.exists()
    assert not DeviceEvent.objects.filter(device=device).exists()


@pytest.mark.django_db
def test_an_organization_that_lost_the_device_cannot_release_it_from_its_new_owner(space, owner, outsider):
    device = _claimed(space, owner)
    stale = _copy(device)
    release_device(_copy(device), actor=owner)
    theirs = outsider.memberships.get().organization.spaces.get()
    claim_device(
        space=theirs,
        device_model=device.device_model,
        identifiers={"serial_number": device.identity.identifier_1, "mac_address": device.identity.identifier_2},
        name="Their screen",
        actor=outsider,
    )
    with pytest.raises(DeviceActionError, match="released"):
        release_device(stale, actor=owner)
    kept = Device.objects.get(pk=device.pk)
    assert (kept.status, kept.space, kept.name) == (Device.Status.CLAIMED, theirs, "Their screen")
    assert kept.events.filter(kind=DeviceEvent.Kind.CLAIMED).exists()


@pytest.mark.django_db
def test_an_owner_cannot_allow_re_activation_of_a_device_released_meanwhile(space, owner):
    device = _claimed(space, owner)
    stale = _copy(device)
    released = release_device(_copy(device), actor=owner)
    with pytest.raises(DeviceActionError, match="released"):
        allow_reactivation(stale, actor=owner)
    assert Device.objects.get(pk=device.pk).reactivation_allowed_until == released.reactivation_allowed_until
    assert not DeviceEvent.objects.filter(device=device).exists(), "the next owner finds no trace of it"


@pytest.mark.django_db
def test_vendor_staff_cannot_allow_re_activation_of_a_claimed_unit(space, owner, acme_staff):
    device = _claimed(space, owner)
    with pytest.raises(DeviceActionError, match="its owner allows re-activation from the portal"):
        allow_reactivation(device, actor=acme_staff, by_vendor_staff=True)
    assert Device.objects.get(pk=device.pk).reactivation_allowed_until is None


@pytest.mark.django_db
def test_vendor_staff_cannot_allow_re_activation_of_a_unit_claimed_since_they_looked(space, owner, acme_staff):
    device = _claimed(space, owner)
    released = release_device(_copy(device), actor=owner)
    seen_unclaimed = _copy(device)
    claim_device(
        space=space,
        device_model=device.device_model,
        identifiers={"serial_number": device.identity.identifier_1, "mac_address": device.identity.identifier_2},
        name="Claimed again",
        actor=owner,
    )
    with pytest.raises(DeviceActionError, match="its owner allows re-activation from the portal"):
        allow_reactivation(seen_unclaimed, actor=acme_staff, by_vendor_staff=True)
    assert Device.objects.get(pk=device.pk).reactivation_allowed_until == released.reactivation_allowed_until


@pytest.mark.django_db
def test_moving_a_selection_with_a_device_released_meanwhile_moves_none(space, lobby, owner):
    kept, lost = _claimed(space, owner), _claimed(space, owner)
    stale = _copy(lost)
    release_device(_copy(lost), actor=owner)
    with pytest.raises(DeviceActionError, match="released"):
        move_devices([_copy(kept), stale], space=lobby, actor=owner)
    assert Device.objects.get(pk=kept.pk).space == space


@pytest.mark.django_db
def test_a_move_to_another_organizations_space_is_refused_on_the_locked_row(space, owner):
    device = _claimed(space, owner)
    elsewhere = SpaceFactory(organization=OrganizationFactory())
    with pytest.raises(DeviceActionError, match="own organization"):
        move_device(_copy(device), space=elsewhere, actor=owner)
    assert Device.objects.get(pk=device.pk).space == space


@pytest.mark.django_db(transaction=True)
def test_a_claim_racing_the_deletion_of_its_space_is_refused_with_a_message(space, owner):
    doomed = SpaceFactory(organization=space.organization, name="Annex")
    identity = ApprovedIdentityFactory(device_model=space.organization.connected_vendors.get().device_models.get())

    first, second, overlapped = race(
        lambda: delete_space(doomed, actor=owner),
        lambda: claim_device(
            space=doomed, device_model=identity.device_model, identifiers=identity.identifiers, name="X", actor=owner
        ),
    )

    assert overlapped
    assert isinstance(second, SpaceDeleted), second
    assert "was deleted meanwhile" in second.message
    assert not Device.objects.filter(identity=identity, status=Device.Status.CLAIMED).exists()


@pytest.mark.django_db(transaction=True)
def test_deleting_a_space_racing_a_claim_into_it_finds_the_device_there(space, owner):
    annex = SpaceFactory(organization=space.organization, name="Annex")
    identity = ApprovedIdentityFactory(device_model=space.organization.connected_vendors.get().device_models.get())

    first, second, overlapped = race(
        lambda: claim_device(
            space=annex, device_model=identity.device_model, identifiers=identity.identifiers, name="X", actor=owner
        ),
        lambda: delete_space(annex, actor=owner),
    )

    assert overlapped
    assert isinstance(second, SpaceNotEmpty), second
    assert Device.objects.get(identity=identity).space == annex


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("was_online", [True, False], ids=["heartbeat", "back online"])
def test_a_heartbeat_racing_a_release_leaves_nothing_for_the_next_owner(space, owner, was_online, settings):
    settings.HEARTBEAT_BATCHING = False  # written directly, as while Redis is down (batched: test_heartbeat_intake)
    device = _claimed(space, owner)
    Device.objects.filter(pk=device.pk).update(online=was_online, activated_at=timezone.now())
    authenticated = _copy(device)  # what the heartbeat read when the device presented its key

    first, second, overlapped = race(
        lambda: release_device(_copy(device), actor=owner),
        lambda: record_heartbeat(authenticated, metrics={"temperature": 21.5}),
    )

    assert overlapped
    assert not isinstance(first, Exception), first
    assert not isinstance(second, Exception), second
    assert not Heartbeat.objects.filter(device=device).exists()
    assert not DeviceEvent.objects.filter(device=device).exists()


@pytest.mark.django_db(transaction=True)
def test_a_bulk_action_and_an_activation_batch_lock_shared_devices_in_one_order():
    """An activation batch locks its devices in identity order (Device.objects.create_or_lock); a
    bulk action locking the same devices in another order would deadlock with it."""
    first, second = ApprovedIdentityFactory(), ApprovedIdentityFactory()
    later_device, earlier_device = DeviceFactory(identity=second), DeviceFactory(identity=first)
    assert later_device.pk < earlier_device.pk, "device ids run against identity order"

    def bulk_action():
        with transaction.atomic():
            lock_in_order([earlier_device, later_device])

    batch, bulk, overlapped = race(
        lambda: Device.objects.create_or_lock({first.pk: first.device_model_id}),
        bulk_action,
        then=lambda: Device.objects.create_or_lock({second.pk: second.device_model_id}),
    )

    assert overlapped
    assert not isinstance(batch, Exception), batch
    assert not isinstance(bulk, Exception), bulk


@pytest.mark.django_db(transaction=True)
def test_a_heartbeat_whose_metrics_are_written_while_a_release_runs_keeps_none(space, owner, settings):
    """The release takes the device between the heartbeat's two statements: the metrics row must
    wait for it and then see the device released, not write to the old owner's history."""
    settings.HEARTBEAT_BATCHING = False  # the direct write, as while Redis is down
    device = _claimed(space, owner)
    Device.objects.filter(pk=device.pk).update(online=True, activated_at=timezone.now())
    authenticated = _copy(device)
    released, heartbeat_waited = threading.Event(), threading.Event()

    def release():
        try:
            with transaction.atomic():
                release_device(_copy(device), actor=owner)
                released.set()
                wait_until_someone_waits_for(heartbeat_waited)
        finally:
            connection.close()

    releaser = threading.Thread(target=release)

    def release_after_the_update(execute, sql, params, many, context):
        result = execute(sql, params, many, context)
        if sql.lstrip().startswith("UPDATE") and not releaser.is_alive() and not released.is_set():
            releaser.start()
            assert released.wait(10)
        return result

    with connection.execute_wrapper(release_after_the_update):
        record_heartbeat(authenticated, metrics={"temperature": 21.5})
    releaser.join()

    assert heartbeat_waited.is_set(), "the metrics row waited for the release"
    assert not Heartbeat.objects.filter(device=device).exists()
    assert Device.objects.get(pk=device.pk).status != Device.Status.CLAIMED
