"""claim_devices() and check_claims(): many rows checked with claim_device's own rules and wording,
claimed all together or not at all, in a number of statements that does not grow with the rows,
and counted against the claim-attempt limits like as many single claims."""

import threading
import time

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.models import AuditEntry, Role
from devices.bulk_claims import CLAIMABLE, CLAIMED, ClaimRow, check_claims, claim_devices
from devices.claims import ClaimError, TooManyFailures, claim_device
from devices.models import Device, DeviceEvent
from vendors.claim_codes import verhoeff_check_digit
from vendors.models import ApprovedIdentity

from .conftest import CAMERA_CODE, connect_to_test_database
from .factories import (
    ApprovedIdentityFactory,
    ClaimedDeviceFactory,
    DeviceModelFactory,
    MembershipFactory,
    OrganizationFactory,
    SpaceFactory,
)

# A well-formed claim code that is not the camera unit's.
OTHER_CODE = "1111111111" + verhoeff_check_digit("1111111111")

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_throttle")]


def _row(line, identity, space, name=None, **typed):
    identifiers = {"serial_number": identity.identifier_1, "mac_address": identity.identifier_2} | typed
    return ClaimRow(
        line=line,
        space=space,
        device_model=identity.device_model,
        identifiers=identifiers,
        name=name if name is not None else f"Screen {line}",
    )


def _units(device_model, count):
    return [ApprovedIdentityFactory(device_model=device_model) for _ in range(count)]


def _single_refusal(row, actor):
    """What claim_device says for the row alone: the wording the report must repeat."""
    with pytest.raises(ClaimError) as refused:
        claim_device(
            space=row.space,
            device_model=row.device_model,
            identifiers=row.identifiers,
            claim_code=row.claim_code,
            name=row.name,
            actor=actor,
        )
    return refused.value.code, refused.value.message


def test_every_row_is_claimed_in_one_go_with_an_event_and_an_audit_line_per_device(space, owner, device_model):
    units = _units(device_model, 3)
    result = claim_devices(
        [_row(n, unit, space) for n, unit in enumerate(units, 1)], organization=space.organization, actor=owner
    )
    assert [(row.line, row.result) for row in result.rows] == [(1, CLAIMED), (2, CLAIMED), (3, CLAIMED)]
    claimed = Device.objects.filter(space=space, status=Device.Status.CLAIMED, claimed_by=owner)
    assert sorted(claimed.values_list("name", flat=True)) == ["Screen 1", "Screen 2", "Screen 3"]
    assert {device.pk for device in result.devices} == set(claimed.values_list("pk", flat=True))
    assert DeviceEvent.objects.filter(kind=DeviceEvent.Kind.CLAIMED, actor=owner, space=space).count() == 3
    audit = AuditEntry.objects.filter(organization=space.organization, action=AuditEntry.Action.DEVICE_CLAIMED)
    assert sorted(audit.values_list("target", flat=True)) == ["Screen 1", "Screen 2", "Screen 3"]


def test_one_refused_row_leaves_every_unit_unclaimed_and_the_report_says_why_row_by_row(space, owner, device_model):
    good = _units(device_model, 2)
    revoked = ApprovedIdentityFactory(device_model=device_model, status=ApprovedIdentity.Status.REVOKED)
    rows = [_row(1, good[0], space), _row(2, revoked, space), _row(3, good[1], space)]
    result = claim_devices(rows, organization=space.organization, actor=owner)
    assert not Device.objects.filter(status=Device.Status.CLAIMED).exists()
    assert not DeviceEvent.objects.exists()
    assert result.devices == []
    assert [(row.line, row.result) for row in result.rows] == [(1, CLAIMABLE), (2, "revoked"), (3, CLAIMABLE)]
    assert result.rows[1].message == _single_refusal(rows[1], owner)[1]


def test_each_refusal_is_worded_as_claim_device_words_it(space, owner, outsider, device_model, unit, camera, settings):
    settings.CLAIM_FAILURE_LIMIT = 20
    other_model = DeviceModelFactory(vendor=device_model.vendor, name="Acme Hub 3")
    mine = ClaimedDeviceFactory(
        identity__device_model=device_model, space=SpaceFactory(organization=space.organization, name="Lobby")
    )
    theirs = ClaimedDeviceFactory(
        identity__device_model=device_model, space__organization=outsider.memberships.get().organization
    )
    elsewhere = ApprovedIdentityFactory(device_model=other_model)
    typo = ApprovedIdentityFactory(device_model=device_model)
    code_row = ClaimRow(6, space, camera, {"serial_number": unit.identifier_1}, "Door", claim_code="12345678901")
    wrong_code = ClaimRow(7, space, camera, {"serial_number": unit.identifier_1}, "Door", claim_code=OTHER_CODE)
    rows = [
        _row(1, mine.identity, space),
        _row(2, theirs.identity, space),
        ClaimRow(3, space, device_model, elsewhere.identifiers, "A"),
        _row(4, typo, space, mac_address="02:00:00:12:AB"),
        _row(5, typo, space, serial_number="SN-NOPE"),
        code_row,
        wrong_code,
        _row(8, typo, space, name="  "),
    ]
    checked = check_claims(rows, organization=space.organization, actor=owner)
    report = {row.line: (row.result, row.message) for row in checked.rows}
    expected = {row.line: _single_refusal(row, owner) for row in rows}
    assert report == expected
    assert [report[line][0] for line in sorted(report)] == [
        "already_claimed_by_you",
        "claimed_by_another_organization",
        "wrong_model",
        "invalid_format",
        "not_approved",
        "invalid_claim_code",
        "not_approved",
        "invalid_name",
    ]


def test_a_claim_code_unit_is_claimed_with_its_code(space, owner, unit, camera):
    row = ClaimRow(1, space, camera, {"serial_number": unit.identifier_1}, "Door", claim_code=CAMERA_CODE)
    result = claim_devices([row], organization=space.organization, actor=owner)
    assert [row.result for row in result.rows] == [CLAIMED]
    assert Device.objects.get(identity=unit).status == Device.Status.CLAIMED


def test_a_unit_twice_in_a_file_is_refused_on_its_second_line(space, owner, device_model):
    unit = ApprovedIdentityFactory(device_model=device_model)
    rows = [_row(1, unit, space), _row(2, unit, space, mac_address=unit.identifier_2.lower())]
    result = check_claims(rows, organization=space.organization, actor=owner)
    assert [(row.result, row.message) for row in result.rows] == [
        (CLAIMABLE, ""),
        ("repeated_in_file", "This unit is on line 1 already: claim it once."),
    ]


def test_checking_a_file_claims_nothing(space, owner, device_model):
    rows = [_row(n, unit, space) for n, unit in enumerate(_units(device_model, 2), 1)]
    assert [row.result for row in check_claims(rows, organization=space.organization, actor=owner).rows] == [
        CLAIMABLE,
        CLAIMABLE,
    ]
    assert not Device.objects.filter(status=Device.Status.CLAIMED).exists()


def test_the_statements_of_a_bulk_claim_do_not_grow_with_its_rows(space, owner, device_model):
    def statements(count):
        rows = [_row(n, unit, space) for n, unit in enumerate(_units(device_model, count), 1)]
        with CaptureQueriesContext(connection) as queries:
            result = claim_devices(rows, organization=space.organization, actor=owner)
        assert len(result.devices) == count
        return len(queries)

    assert statements(3) == statements(40)


def test_each_failed_row_counts_as_a_claim_attempt_so_a_file_cannot_guess_past_the_limit(
    space, owner, device_model, settings
):
    settings.CLAIM_FAILURE_LIMIT = 10
    good = ApprovedIdentityFactory(device_model=device_model)
    guesses = [_row(n, good, space, serial_number=f"SN-GUESS-{n}") for n in range(1, 12)]
    with pytest.raises(TooManyFailures):
        check_claims(guesses, organization=space.organization, actor=owner)
    # The refused file's failures stay counted: a correct single claim is paused too.
    with pytest.raises(TooManyFailures):
        claim_device(
            space=space,
            device_model=device_model,
            identifiers={"serial_number": good.identifier_1, "mac_address": good.identifier_2},
            name="Lobby",
            actor=owner,
        )


def test_failed_rows_within_the_limit_are_reported_and_use_it_up(space, owner, device_model, settings):
    settings.CLAIM_FAILURE_LIMIT = 10
    good = ApprovedIdentityFactory(device_model=device_model)
    guesses = [_row(n, good, space, serial_number=f"SN-GUESS-{n}") for n in range(1, 11)]
    report = check_claims(guesses, organization=space.organization, actor=owner)
    assert {row.result for row in report.rows} == {"not_approved"}
    # The limit is spent: even a file of one good row (no failure) is refused now.
    with pytest.raises(TooManyFailures):
        claim_devices([_row(1, good, space)], organization=space.organization, actor=owner)


def test_a_file_without_failures_uses_none_of_the_limit(space, owner, device_model, settings):
    settings.CLAIM_FAILURE_LIMIT = 2
    for _ in range(3):
        rows = [_row(n, unit, space) for n, unit in enumerate(_units(device_model, 3), 1)]
        assert len(claim_devices(rows, organization=space.organization, actor=owner).devices) == 3


def test_the_organization_s_limit_counts_the_rows_of_every_member(space, owner, admin_member, device_model, settings):
    settings.CLAIM_FAILURE_LIMIT = 10
    settings.CLAIM_FAILURE_LIMIT_PER_ORGANIZATION = 15
    good = ApprovedIdentityFactory(device_model=device_model)
    guesses = [_row(n, good, space, serial_number=f"SN-GUESS-{n}") for n in range(1, 9)]
    check_claims(guesses, organization=space.organization, actor=owner)
    with pytest.raises(TooManyFailures) as refused:
        check_claims(guesses, organization=space.organization, actor=admin_member)
    assert "your organization" in refused.value.message


def _contender(vendor):
    membership = MembershipFactory(organization=OrganizationFactory(vendors=[vendor]), role=Role.ADMIN)
    return SpaceFactory(organization=membership.organization), membership.user


@pytest.mark.django_db(transaction=True)
def test_a_bulk_claim_racing_single_claims_for_its_units_ends_all_or_none_without_deadlock(device_model):
    """The bulk claim and two single claims of another organization start together while another
    connection holds the device history table, so that whoever locks the units first stops at
    writing its history, holding them, and the others wait (the single claims take the units in
    the bulk's opposite order). Whoever wins, each unit has one owner and the file all or none."""
    units = _units(device_model, 3)
    (bulk_space, bulk_actor), (single_space, single_actor) = (
        _contender(device_model.vendor),
        _contender(device_model.vendor),
    )
    start = threading.Barrier(3)
    outcomes, errors = {}, []

    def bulk():
        try:
            start.wait()
            rows = [_row(n, unit, bulk_space) for n, unit in enumerate(units, 1)]
            outcomes["bulk"] = claim_devices(rows, organization=bulk_space.organization, actor=bulk_actor)
        except Exception as error:  # noqa: BLE001 - a deadlock or any other error fails the test below
            errors.append(error)
        finally:
            connection.close()

    def single(unit):
        try:
            start.wait()
            outcomes[unit.pk] = claim_device(
                space=single_space,
                device_model=device_model,
                identifiers=unit.identifiers,
                name="Single",
                actor=single_actor,
            )
        except ClaimError as refused:
            outcomes[unit.pk] = refused
        except Exception as error:  # noqa: BLE001
            errors.append(error)
        finally:
            connection.close()

    history = connect_to_test_database()
    history.execute("LOCK TABLE devices_deviceevent IN EXCLUSIVE MODE")
    threads = [threading.Thread(target=bulk)] + [
        threading.Thread(target=single, args=(unit,)) for unit in (units[2], units[0])
    ]
    for thread in threads:
        thread.start()
    time.sleep(1)  # every contender is at its lock by now
    history.commit()
    history.close()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    owners = dict(Device.objects.filter(identity__in=units).values_list("identity_id", "organization_id"))
    if outcomes["bulk"].devices:
        assert owners == {unit.pk: bulk_space.organization_id for unit in units}
        assert all(isinstance(outcomes[unit.pk], ClaimError) for unit in (units[0], units[2]))
    else:
        # The file's other unit has no device row: the one the bulk claim created rolled back with it.
        assert owners == {units[0].pk: single_space.organization_id, units[2].pk: single_space.organization_id}
        assert {row.result for row in outcomes["bulk"].failed} == {"claimed_by_another_organization"}
