"""claim_device(): every way a claim is refused, the failure throttle, and two organizations racing."""

import threading
import time

import pytest
from django.core.cache import cache
from django.db import connection

from accounts.models import Role
from devices.claims import (
    AlreadyClaimedByYou,
    ClaimedByAnotherOrganization,
    InvalidIdentifier,
    NotApproved,
    Revoked,
    TooManyFailures,
    VendorNotConnected,
    WrongModel,
    claim_device,
)
from devices.models import Device, DeviceEvent
from vendors.models import ApprovedIdentity

from .conftest import connect_to_test_database
from .factories import (
    ApprovedIdentityFactory,
    ClaimedDeviceFactory,
    DeviceFactory,
    DeviceModelFactory,
    MembershipFactory,
    OrganizationFactory,
    SpaceFactory,
)


@pytest.fixture(autouse=True)
def _fresh_throttle():
    # The failure counters live in Redis, which outlives each test's database transaction.
    cache.clear()


def _claim(identity, space, actor, **typed):
    identifiers = {"serial_number": identity.identifier_1, "mac_address": identity.identifier_2} | typed
    return claim_device(
        space=space, device_model=identity.device_model, identifiers=identifiers, name="Lobby screen", actor=actor
    )


@pytest.mark.django_db
def test_claim_writes_an_event_saying_who_claimed_into_which_space(space, owner, device_model):
    device = _claim(ApprovedIdentityFactory(device_model=device_model), space, owner)
    event = DeviceEvent.objects.get(device=device)
    assert (event.kind, event.actor, event.space, event.details["space"]) == (
        DeviceEvent.Kind.CLAIMED,
        owner,
        space,
        space.name,
    )


@pytest.mark.django_db
@pytest.mark.parametrize("typed_mac", ["02:00:00:00:12:AB", "02-00-00-00-12-ab", "0200.0000.12ab", " 0200000012AB "])
def test_a_mac_address_is_accepted_in_every_usual_format(space, owner, device_model, typed_mac):
    identity = ApprovedIdentityFactory(device_model=device_model, identifier_2="02:00:00:00:12:AB")
    device = _claim(identity, space, owner, mac_address=typed_mac, serial_number=f" {identity.identifier_1.lower()} ")
    assert device.identity == identity


@pytest.mark.django_db
def test_a_malformed_mac_address_is_refused_with_the_expected_format(space, owner, device_model):
    identity = ApprovedIdentityFactory(device_model=device_model)
    with pytest.raises(InvalidIdentifier) as refused:
        _claim(identity, space, owner, mac_address="02:00:00:12:AB")
    assert refused.value.field == "mac_address"
    assert "This is not a valid MAC address: expected 12 hexadecimal digits" in refused.value.message


NOT_APPROVED = (
    "You have attempted to add a Serial number and MAC address that is not approved for this device. "
    "This may be by error. Please verify the exact Serial number and MAC address of your device and if you "
    "believe it is correct, contact {vendor.name} support ({vendor.support_email})."
)


@pytest.mark.django_db
def test_a_serial_number_that_is_not_approved_gets_the_vendors_message_naming_every_field(space, owner, device_model):
    identity = ApprovedIdentityFactory(device_model=device_model, identifier_2="AA:AA:AA:CC:DD:EE")
    with pytest.raises(NotApproved) as refused:
        _claim(identity, space, owner, serial_number="ACE-4444")
    assert refused.value.field is None
    assert refused.value.message == NOT_APPROVED.format(vendor=device_model.vendor)


@pytest.mark.django_db
def test_not_approved_reads_the_same_whichever_identifier_is_wrong(space, owner, device_model):
    identity, other = ApprovedIdentityFactory.create_batch(2, device_model=device_model)
    refusals = []
    for typed in (
        {"mac_address": other.identifier_2},  # a known serial with another unit's MAC
        {"serial_number": other.identifier_1},  # a known MAC with another unit's serial
        {"serial_number": identity.identifier_1 + "9"},  # an unknown serial with a known MAC
    ):
        with pytest.raises(NotApproved) as refused:
            _claim(identity, space, owner, **typed)
        refusals.append((refused.value.field, refused.value.message.split(" Check characters")[0]))
    assert len(set(refusals)) == 1


@pytest.mark.django_db
def test_a_not_approved_value_with_look_alike_characters_gets_a_hint_naming_them(space, owner, device_model):
    identity = ApprovedIdentityFactory(device_model=device_model, identifier_2="AA:AA:AA:CC:DD:EE")
    with pytest.raises(NotApproved) as refused:
        _claim(identity, space, owner, serial_number="SN-0O1I58")
    assert "easy to confuse on a sticker: O/0, I/1/L, S/5, B/8." in refused.value.message


@pytest.mark.django_db
def test_the_look_alike_hint_reads_every_field_typed_not_only_the_wrong_one(space, owner, device_model):
    identity = ApprovedIdentityFactory(
        device_model=device_model, identifier_1="ACE-4", identifier_2="02:AA:AA:CC:DD:EE"
    )
    with pytest.raises(NotApproved) as refused:
        _claim(identity, space, owner, serial_number="ACE-7")  # the known MAC holds the look-alikes
    assert "easy to confuse on a sticker: O/0, Z/2." in refused.value.message


@pytest.mark.django_db
def test_a_not_approved_value_without_look_alike_characters_gets_no_hint(space, owner, device_model):
    identity = ApprovedIdentityFactory(device_model=device_model)
    with pytest.raises(NotApproved) as refused:
        _claim(identity, space, owner, serial_number="ACE-4", mac_address="AA:AA:AA:CC:DD:EE")
    assert "easy to confuse" not in refused.value.message


@pytest.mark.django_db
def test_identifiers_of_another_model_of_the_vendor_name_that_model(space, owner, device_model):
    sibling = DeviceModelFactory(vendor=device_model.vendor, name="Acme Hub 3")
    identity = ApprovedIdentityFactory(device_model=sibling)
    with pytest.raises(WrongModel) as refused:
        claim_device(
            space=space,
            device_model=device_model,
            identifiers={"serial_number": identity.identifier_1, "mac_address": identity.identifier_2},
            name="Hub",
            actor=owner,
        )
    assert refused.value.other_model == sibling
    assert "These identifiers belong to a Acme Hub 3" in refused.value.message


@pytest.mark.django_db
def test_identifiers_only_partly_those_of_another_models_unit_are_not_approved_without_naming_it(
    space, owner, device_model
):
    sibling = DeviceModelFactory(vendor=device_model.vendor, name="Acme Hub 3")
    identity = ApprovedIdentityFactory(device_model=sibling)
    with pytest.raises(NotApproved) as refused:
        claim_device(
            space=space,
            device_model=device_model,
            identifiers={"serial_number": identity.identifier_1, "mac_address": "AA:AA:AA:CC:DD:EE"},
            name="Hub",
            actor=owner,
        )
    assert "Acme Hub 3" not in refused.value.message


@pytest.mark.django_db
def test_a_unit_revoked_by_the_vendor_cannot_be_claimed(space, owner, device_model):
    identity = ApprovedIdentityFactory(device_model=device_model, status=ApprovedIdentity.Status.REVOKED)
    with pytest.raises(Revoked) as refused:
        _claim(identity, space, owner)
    assert f"{device_model.vendor.name} has withdrawn this unit" in refused.value.message
    assert device_model.vendor.support_email in refused.value.message


@pytest.mark.django_db
def test_a_unit_claimed_by_another_organization_is_refused_without_naming_it(space, owner, device_model):
    theirs = ClaimedDeviceFactory(identity__device_model=device_model, space__organization__name="Umbrella Corp")
    with pytest.raises(ClaimedByAnotherOrganization) as refused:
        _claim(theirs.identity, space, owner)
    assert refused.value.message.startswith(
        "This device is already claimed by another organization. If you got it from someone else, "
        f"ask them to release it; otherwise contact {device_model.vendor.name} support"
    )
    assert "Umbrella" not in refused.value.message
    theirs.refresh_from_db()
    assert theirs.space_id != space.pk


@pytest.mark.django_db
def test_a_unit_already_claimed_by_your_organization_says_which_space_it_is_in(space, owner, device_model):
    lobby = SpaceFactory(organization=space.organization, name="Lobby")
    ours = ClaimedDeviceFactory(identity__device_model=device_model, space=lobby, name="Hall screen")
    with pytest.raises(AlreadyClaimedByYou) as refused:
        _claim(ours.identity, space, owner)
    assert refused.value.device == ours
    assert "already claimed this device: it is “Hall screen” in the space “Lobby”" in refused.value.message


@pytest.mark.django_db
def test_after_ten_failures_within_the_window_even_a_correct_claim_is_refused_until_a_given_time(
    space, owner, device_model
):
    identity = ApprovedIdentityFactory(device_model=device_model)
    for _ in range(10):
        with pytest.raises(NotApproved):
            _claim(identity, space, owner, serial_number="NOPE-1")
    with pytest.raises(TooManyFailures) as refused:
        _claim(identity, space, owner)
    assert f"try again after {refused.value.retry_at:%H:%M}" in refused.value.message
    assert not Device.objects.filter(identity=identity, status=Device.Status.CLAIMED).exists()


@pytest.mark.django_db
def test_nine_failures_still_allow_a_correct_claim(space, owner, device_model):
    identity = ApprovedIdentityFactory(device_model=device_model)
    for _ in range(9):
        with pytest.raises(NotApproved):
            _claim(identity, space, owner, serial_number="NOPE-1")
    assert _claim(identity, space, owner).status == Device.Status.CLAIMED


def _race(identity, contenders):
    """Claim `identity` from one thread per (space, actor), released together by a barrier, while
    another connection holds the device history table: the claimant that locks the unit's row
    first stops inside claim_device, at writing its history, still holding the lock. Once the
    other is seen waiting on that lock (blocked by the first's backend), both go on.

    Returns the outcomes (a Device or the refusal) and whether that overlap was seen."""
    start = threading.Barrier(len(contenders))
    outcomes = []

    def attempt(space, actor):
        try:
            start.wait()
            outcomes.append(_claim(identity, space, actor))
        except ClaimedByAnotherOrganization as refused:
            outcomes.append(refused)
        finally:
            connection.close()  # each thread has its own database connection

    history = connect_to_test_database()
    observer = connect_to_test_database(autocommit=True)
    history.execute("LOCK TABLE devices_deviceevent IN EXCLUSIVE MODE")
    # Its server session's, asked within the transaction: behind a pooler, info.backend_pid is the pooler's.
    held_by = history.execute("SELECT pg_backend_pid()").fetchone()[0]
    threads = [threading.Thread(target=attempt, args=pair) for pair in contenders]
    for thread in threads:
        thread.start()
    try:
        overlapped = _one_waits_on_the_other(observer, held_by=held_by)
    finally:
        history.commit()
        for thread in threads:
            thread.join()
        history.close()
        observer.close()
    return outcomes, overlapped


def _one_waits_on_the_other(observer, *, held_by, timeout=20):
    """Whether, within `timeout` seconds (a bound against a hang, not a speed goal), a backend of
    the test database waits on another that waits on `held_by`. (Not by the claimants' own backend
    pids: behind a transaction pooler a thread's transactions may each run in another session.)"""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        chain = observer.execute(
            "SELECT EXISTS (SELECT 1 FROM pg_stat_activity AS waiting, unnest(pg_blocking_pids(waiting.pid)) AS"
            " blocker WHERE waiting.datname = current_database() AND %s = ANY(pg_blocking_pids(blocker)))",
            [held_by],
        ).fetchone()[0]
        if chain:
            return True
        time.sleep(0.02)
    return False


def _contender(vendor):
    membership = MembershipFactory(organization=OrganizationFactory(vendors=[vendor]), role=Role.ADMIN)
    return SpaceFactory(organization=membership.organization), membership.user


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("first_connected", [True, False], ids=["device row exists", "first row"])
def test_two_organizations_racing_for_one_unit_end_with_exactly_one_claim(device_model, first_connected):
    """The two claims overlap (one waits on the other's lock of the unit, which decides), whether
    the unit has connected once already (its device row exists) or its row is created by the claim."""
    identity = ApprovedIdentityFactory(device_model=device_model)
    if first_connected:
        DeviceFactory(identity=identity)
    outcomes, overlapped = _race(identity, [_contender(device_model.vendor), _contender(device_model.vendor)])
    assert overlapped, "the two claims never were inside claim_device at once"
    claimed = [o for o in outcomes if isinstance(o, Device)]
    refused = [o for o in outcomes if isinstance(o, ClaimedByAnotherOrganization)]
    assert (len(claimed), len(refused)) == (1, 1)
    device = Device.objects.get(identity=identity)
    assert device.organization_id == claimed[0].organization_id
    assert device.events.filter(kind=DeviceEvent.Kind.CLAIMED).count() == 1


@pytest.mark.django_db
def test_an_organization_cannot_claim_from_a_vendor_it_is_not_connected_to(space, owner):
    identity = ApprovedIdentityFactory(device_model=DeviceModelFactory(vendor__name="Stranger Devices"))
    with pytest.raises(VendorNotConnected) as refused:
        _claim(identity, space, owner)
    assert "not connected to Stranger Devices" in refused.value.message
    assert not Device.objects.filter(identity=identity).exists()
