"""claim_device() for models whose claiming method requires a claim code: the code in every typed
form, a typo caught by its check digit, and nothing told about a unit before the code has matched;
and the failure limit of the whole organization, parallel tries included."""

import threading

import pytest
from django.db import connection

from accounts.models import Role
from devices.claims import (
    AlreadyClaimedByYou,
    ClaimedByAnotherOrganization,
    InvalidClaimCode,
    NotApproved,
    Revoked,
    TooManyFailures,
    WrongModel,
    check_claimable,
    claim_device,
)
from devices.models import Device
from vendors.claim_codes import format_claim_code, generate_claim_code
from vendors.models import ApprovedIdentity

from .conftest import CAMERA_CODE as CODE
from .factories import (
    ApprovedIdentityFactory,
    ClaimedDeviceFactory,
    DeviceModelFactory,
    MembershipFactory,
    OrganizationFactory,
    SpaceFactory,
)

pytestmark = pytest.mark.usefixtures("fresh_throttle")


def _claim(unit, space, actor, code=CODE, serial=None, device_model=None):
    return claim_device(
        space=space,
        device_model=device_model or unit.device_model,
        identifiers={"serial_number": serial or unit.identifier_1},
        claim_code=code,
        name="Door camera",
        actor=actor,
    )


@pytest.mark.django_db
@pytest.mark.parametrize(
    "typed", [CODE, format_claim_code(CODE), "1234 567 8902", " 1234-5678-902 ", "1 2 3 4 5 6 7 8 9 0 2"]
)
def test_a_claim_code_is_accepted_with_any_spaces_or_dashes(space, owner, unit, typed):
    assert _claim(unit, space, owner, code=typed).identity == unit


@pytest.mark.django_db
def test_a_claim_code_model_cannot_be_claimed_without_its_code(space, owner, unit):
    with pytest.raises(InvalidClaimCode) as refused:
        _claim(unit, space, owner, code=None)
    assert refused.value.field == "claim_code"
    assert not Device.objects.filter(identity=unit).exists()


@pytest.mark.django_db
def test_a_code_whose_check_digit_fails_is_a_typo_on_the_claim_code_and_does_not_count(space, owner, unit, settings):
    settings.CLAIM_FAILURE_LIMIT = 2
    for typo in ("12345678903", "21345678902", "12345678920"):  # one digit wrong, two swapped
        with pytest.raises(InvalidClaimCode) as refused:
            _claim(unit, space, owner, code=typo)
        assert refused.value.field == "claim_code"
        assert "has a typo" in refused.value.message
    assert _claim(unit, space, owner).status == Device.Status.CLAIMED


@pytest.mark.django_db
def test_a_wrong_code_reads_exactly_as_a_wrong_serial_number(space, owner, unit):
    other = ApprovedIdentityFactory(device_model=unit.device_model, identifier_1="AC1-260002", claim_code=CODE)
    wrong_code = generate_claim_code()
    refusals = []
    for serial, code in ((unit.identifier_1, wrong_code), ("AC1-269999", CODE), (other.identifier_1, wrong_code)):
        with pytest.raises(NotApproved) as refused:
            _claim(unit, space, owner, serial=serial, code=code)
        refusals.append((type(refused.value), refused.value.field, refused.value.message.split(" Check")[0]))
    assert len(set(refusals)) == 1
    assert refusals[0][2].startswith(
        "You have attempted to add a Serial number and Claim code that is not approved for this device."
    )


@pytest.mark.django_db
def test_a_unit_whose_list_has_no_code_is_not_approved_whatever_code_is_typed(space, owner, camera):
    bare = ApprovedIdentityFactory(device_model=camera)
    with pytest.raises(NotApproved):
        _claim(bare, space, owner)


@pytest.mark.django_db
def test_a_revoked_unit_is_told_only_to_who_typed_its_code(space, owner, unit):
    unit.status = ApprovedIdentity.Status.REVOKED
    unit.save()
    with pytest.raises(NotApproved):
        _claim(unit, space, owner, code=generate_claim_code())
    with pytest.raises(Revoked):
        _claim(unit, space, owner)


@pytest.mark.django_db
def test_a_unit_claimed_by_another_organization_is_told_only_to_who_typed_its_code(space, owner, unit):
    ClaimedDeviceFactory(identity=unit)
    with pytest.raises(NotApproved):
        _claim(unit, space, owner, code=generate_claim_code())
    with pytest.raises(ClaimedByAnotherOrganization):
        _claim(unit, space, owner)


@pytest.mark.django_db
def test_a_unit_already_yours_is_told_only_with_its_code(space, owner, unit):
    ClaimedDeviceFactory(identity=unit, space=space)
    with pytest.raises(NotApproved):
        _claim(unit, space, owner, code=generate_claim_code())
    with pytest.raises(AlreadyClaimedByYou):
        _claim(unit, space, owner)


@pytest.mark.django_db
def test_another_models_unit_is_named_only_when_its_code_matches_too(space, owner, unit):
    lookalike = DeviceModelFactory(vendor=unit.device_model.vendor, name="Acme Cam 2", claim_code=True)
    with pytest.raises(WrongModel) as refused:
        _claim(unit, space, owner, device_model=lookalike)
    assert refused.value.other_model == unit.device_model
    with pytest.raises(NotApproved) as refused:
        _claim(unit, space, owner, device_model=lookalike, code=generate_claim_code())
    assert "Acme Cam 1" not in refused.value.message


@pytest.mark.django_db
def test_check_claimable_says_what_a_claim_would_without_claiming(organization, owner, unit):
    assert (
        check_claimable(
            organization=organization,
            device_model=unit.device_model,
            identifiers={"serial_number": unit.identifier_1},
            claim_code=CODE,
            actor=owner,
        )
        == unit
    )
    assert not Device.objects.filter(identity=unit, status=Device.Status.CLAIMED).exists()


# The organization's limit


@pytest.mark.django_db
def test_the_members_of_one_organization_share_one_failure_limit(space, unit, settings):
    settings.CLAIM_FAILURE_LIMIT, settings.CLAIM_FAILURE_LIMIT_PER_ORGANIZATION = 3, 5
    members = [MembershipFactory(organization=space.organization, role=Role.ADMIN).user for _ in range(3)]
    for attempt in range(5):
        with pytest.raises(NotApproved):
            _claim(unit, space, members[attempt % 3], code=generate_claim_code())
    with pytest.raises(TooManyFailures) as refused:
        _claim(unit, space, members[2])  # a member with failures left, and the right code
    assert "claiming is paused for your organization" in refused.value.message
    assert not Device.objects.filter(identity=unit, status=Device.Status.CLAIMED).exists()


@pytest.mark.django_db
def test_another_organization_is_not_paused_by_one_that_reached_its_limit(space, owner, unit, settings):
    settings.CLAIM_FAILURE_LIMIT_PER_ORGANIZATION = 2
    for _ in range(2):
        with pytest.raises(NotApproved):
            _claim(unit, space, owner, code=generate_claim_code())
    theirs = MembershipFactory(organization=OrganizationFactory(vendors=[unit.device_model.vendor]), role=Role.OWNER)
    assert _claim(unit, SpaceFactory(organization=theirs.organization), theirs.user).status == Device.Status.CLAIMED


@pytest.mark.django_db
def test_claims_that_go_through_are_taken_back_from_the_organizations_count(space, owner, camera, settings):
    settings.CLAIM_FAILURE_LIMIT_PER_ORGANIZATION = 2
    for index in range(4):
        unit = ApprovedIdentityFactory(device_model=camera, claim_code=CODE)
        assert _claim(unit, space, owner).identity == unit, index


@pytest.mark.django_db(transaction=True)
def test_parallel_wrong_codes_of_many_members_cannot_slip_past_the_organizations_limit(settings):
    """Twelve members guess at once, one try each: the count comes before the check, so exactly
    the organization's limit of them are checked and the others are refused unchecked."""
    settings.CLAIM_FAILURE_LIMIT, settings.CLAIM_FAILURE_LIMIT_PER_ORGANIZATION = 10, 4
    camera = DeviceModelFactory(claim_code=True)
    unit = ApprovedIdentityFactory(device_model=camera, claim_code=CODE)
    organization = OrganizationFactory(vendors=[camera.vendor])
    space = SpaceFactory(organization=organization)
    members = [MembershipFactory(organization=organization, role=Role.ADMIN).user for _ in range(12)]
    start = threading.Barrier(len(members))
    outcomes = []

    def guess(member):
        try:
            start.wait()
            _claim(unit, space, member, code=generate_claim_code())
        except (NotApproved, TooManyFailures) as refused:
            outcomes.append(type(refused))
        finally:
            connection.close()

    threads = [threading.Thread(target=guess, args=[member]) for member in members]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcome.__name__ for outcome in outcomes) == ["NotApproved"] * 4 + ["TooManyFailures"] * 8


@pytest.mark.django_db
def test_a_member_paused_by_their_own_limit_does_not_use_up_the_organizations(
    space, owner, admin_member, unit, settings
):
    settings.CLAIM_FAILURE_LIMIT, settings.CLAIM_FAILURE_LIMIT_PER_ORGANIZATION = 2, 5
    for attempt in range(8):  # 2 failures, then 6 tries refused by the owner's own limit
        with pytest.raises(NotApproved if attempt < 2 else TooManyFailures) as refused:
            _claim(unit, space, owner, code=generate_claim_code())
    assert "paused for your account" in refused.value.message
    assert _claim(unit, space, admin_member).status == Device.Status.CLAIMED


@pytest.mark.django_db
def test_an_attempt_refused_by_the_organizations_limit_is_not_held_against_the_member(
    space, owner, admin_member, unit, settings
):
    settings.CLAIM_FAILURE_LIMIT, settings.CLAIM_FAILURE_LIMIT_PER_ORGANIZATION = 2, 2
    for _ in range(2):
        with pytest.raises(NotApproved):
            _claim(unit, space, admin_member, code=generate_claim_code())
    for _ in range(3):
        with pytest.raises(TooManyFailures, match="your organization"):
            _claim(unit, space, owner)
    settings.CLAIM_FAILURE_LIMIT_PER_ORGANIZATION = 10
    assert _claim(unit, space, owner).status == Device.Status.CLAIMED
