"""Claiming a device: the one function the wizard, the admin, the API and the CLI call.

The wording of the errors follows the vendor's support guide (shared seeds): a customer who
sees one of them knows whether to re-check the sticker, ask the previous owner, or call the vendor.
"""

import contextlib

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from accounts.models import AuditEntry
from portal.errors import UserFacingError
from portal.ratelimit import RateLimit, RateLimitExceeded, RateLimitUnavailable, count_attempt, take_back
from releaserequests.models import ReleaseRequest
from vendors.claim_codes import ClaimCodeError, HashedClaimCode, normalize_claim_code
from vendors.identifiers import confusable_characters
from vendors.models import ApprovedIdentity
from webhooks.models import EventName
from webhooks.outbox import record_device_events

from .actions import lock_target_space
from .history import record_change
from .models import Device, DeviceEvent


class ClaimError(UserFacingError):
    """A claim that cannot go through; its message is shown to the customer.

    `field` names the identifier field the message is about, when there is one.
    """

    code = "claim_failed"
    counts_as_failure = True

    def __init__(self, message, *, field=None):
        super().__init__(message)
        self.field = field


class VendorNotConnected(ClaimError):
    code = "vendor_not_connected"
    counts_as_failure = False


class InvalidIdentifier(ClaimError):
    code = "invalid_format"


class InvalidClaimCode(ClaimError):
    """A claim code that cannot be one (a typo caught by its check digit, a wrong length): no guess
    at a unit, so it does not count as a failed claim."""

    code = "invalid_claim_code"
    counts_as_failure = False


class NotApproved(ClaimError):
    code = "not_approved"


class InvalidName(ClaimError):
    code = "invalid_name"
    counts_as_failure = False


NAME_MAX_LENGTH = Device._meta.get_field("name").max_length


def clean_device_name(name):
    """The name a claimed device goes by (`name` stripped), or InvalidName, on the name field."""
    name = (name or "").strip()
    if not name:
        raise InvalidName("Give the device a name.", field="name")
    if len(name) > NAME_MAX_LENGTH:
        raise InvalidName(f"A device name has at most {NAME_MAX_LENGTH} characters.", field="name")
    if "\x00" in name:
        raise InvalidName("A device name cannot contain a NUL character.", field="name")
    return name


# The field key of the claim code, beside the identifier fields, in forms and label links.
CLAIM_CODE_FIELD = "claim_code"
CLAIM_CODE_LABEL = "Claim code"


class WrongModel(ClaimError):
    code = "wrong_model"

    def __init__(self, message, *, other_model):
        super().__init__(message)
        self.other_model = other_model


class Revoked(ClaimError):
    code = "revoked"


class ClaimedByAnotherOrganization(ClaimError):
    """Raised only once the values proved the unit: `device` is what its prover may ask the holder
    to release (releaserequests), and is never shown to them."""

    code = "claimed_by_another_organization"

    def __init__(self, message, *, device):
        super().__init__(message)
        self.device = device


class ReservedForRequester(ClaimError):
    """The unit was released in answer to another organization's release request, which alone may
    claim it for a while (releaserequests.rules.CLAIM_WINDOW)."""

    code = "reserved"
    counts_as_failure = False


class AlreadyClaimedByYou(ClaimError):
    code = "already_claimed_by_you"
    counts_as_failure = False

    def __init__(self, message, *, device):
        super().__init__(message)
        self.device = device


class TooManyFailures(ClaimError):
    code = "too_many_failures"
    counts_as_failure = False

    def __init__(self, message, *, retry_at):
        super().__init__(message)
        self.retry_at = retry_at


class SpaceDeleted(ClaimError):
    code = "space_deleted"
    counts_as_failure = False


class ClaimingUnavailable(ClaimError):
    code = "unavailable"
    counts_as_failure = False


def vendor_support_phrase(vendor):
    """'contact Acme Devices support (support@acme.example)'."""
    contact = vendor.support_email or vendor.support_url
    return f"contact {vendor.name} support" + (f" ({contact})" if contact else "")


def normalize_identifiers(device_model, raw_identifiers):
    """Normalize and format-check each identifier the model's claiming method asks for.

    Returns {column: normalized value}; raises InvalidIdentifier for the first bad or missing one.
    """
    columns = {}
    for field in device_model.claiming_method.ordered_fields():
        try:
            columns[field.column] = field.clean_value(raw_identifiers.get(field.key, ""))
        except ValidationError as exc:
            raise InvalidIdentifier(exc.messages[0], field=field.key) from exc
    return columns


# Claim attempts are limited per user and per organization (portal/ratelimit.py), so that an
# owner cannot multiply the guesses at a sticker or a claim code by inviting more members: counted
# before the claim is checked, and taken back when it goes through or fails for a reason that is
# no guess at a unit.
CLAIM_ATTEMPTS = RateLimit("claims:user", limit="CLAIM_FAILURE_LIMIT", window="CLAIM_FAILURE_WINDOW")
ORGANIZATION_CLAIM_ATTEMPTS = RateLimit(
    "claims:organization", limit="CLAIM_FAILURE_LIMIT_PER_ORGANIZATION", window="CLAIM_FAILURE_WINDOW"
)


def _count(limit, subject, times=1):
    try:
        count_attempt((limit, subject), times=times)
    except RateLimitExceeded as exceeded:
        retry_at = exceeded.retry_at
        paused = "your organization" if limit is ORGANIZATION_CLAIM_ATTEMPTS else "your account"
        raise TooManyFailures(
            f"Too many failed claim attempts. For your security, claiming is paused for {paused}; "
            f"try again after {timezone.localtime(retry_at):%H:%M %Z}.",
            retry_at=retry_at,
        ) from None
    except RateLimitUnavailable:
        raise ClaimingUnavailable(
            "Claiming is unavailable for a moment because the portal cannot count claim attempts. "
            "Please try again in a minute."
        ) from None


def _take_back_claim_attempt(actor, organization_id, times=1):
    take_back(CLAIM_ATTEMPTS, actor.pk, times)
    take_back(ORGANIZATION_CLAIM_ATTEMPTS, organization_id, times)


def _count_claim_attempts(actor, organization_id, times=1):
    # The actor's limit first and, only once that let them through, the organization's (a member
    # paused by their own limit does not use up everyone's; attempts the organization's limit
    # refuses are taken back from the member).
    _count(CLAIM_ATTEMPTS, actor.pk, times)
    try:
        _count(ORGANIZATION_CLAIM_ATTEMPTS, organization_id, times)
    except ClaimError:
        take_back(CLAIM_ATTEMPTS, actor.pk, times)
        raise


def count_failed_claims(actor, organization_id, failures):
    """Count `failures` failed claim attempts of `actor` for the organization at once (the failed
    rows of a file, devices/bulk_claims.py), against claim_device's limits and in its order, before
    the caller tells which rows failed. Raises TooManyFailures when they do not fit in what is left
    of either limit; the counts then stay, as a refused single attempt's does, so that a refusal
    ("this file has more failures than you have left") is no free guess either. A file without
    failures counts as one attempt and is taken back, as a claim that goes through: a paused
    account cannot test guesses one file at a time."""
    times = max(failures, 1)
    _count_claim_attempts(actor, organization_id, times)
    if not failures:
        _take_back_claim_attempt(actor, organization_id)


@contextlib.contextmanager
def _claim_attempt(actor, organization_id):
    """The block is one claim attempt of `actor` for the organization: counted first against the
    actor's limit and, only once that let it through, against the organization's (a member paused
    by their own limit does not use up everyone's; one the organization's limit refuses is taken
    back from the member). Each count is one atomic increment, so parallel attempts cannot slip
    past either limit. Taken back from both unless the block raises a ClaimError that counts as a
    failure."""
    _count_claim_attempts(actor, organization_id)
    try:
        yield
    except ClaimError as error:
        if not error.counts_as_failure:
            _take_back_claim_attempt(actor, organization_id)
        raise
    _take_back_claim_attempt(actor, organization_id)


def claim_code_proof(device_model, claim_code):
    """The HashedClaimCode the claim compares, for a model whose method requires a code (None
    otherwise): `claim_code` is the code as typed, or the HashedClaimCode the portal kept of one.
    Raises InvalidClaimCode, on the claim code's field, for a typed code that cannot be one."""
    if not device_model.claiming_method.requires_claim_code:
        return None
    if isinstance(claim_code, HashedClaimCode):
        return claim_code
    try:
        return HashedClaimCode.of(normalize_claim_code(claim_code))
    except ClaimCodeError as error:
        raise InvalidClaimCode(error.message, field=CLAIM_CODE_FIELD) from error


def proves_possession(identity, proof):
    """Whether the claim code `proof` (a HashedClaimCode, None for a model without codes) is the one
    of `identity`: the identifiers alone prove possession for methods without codes."""
    if not identity.device_model.claiming_method.requires_claim_code:
        return True
    return proof is not None and proof.matches(identity.claim_code_hash)


def _find_identity(device_model, columns, code):
    """The approved identity of `device_model` matching every value and the claim code, or the
    ClaimError saying why not.

    Whichever value is wrong, the refusal is the same NotApproved: it names every field and its
    look-alike hint reads every value typed, so it never tells which value the portal knows.
    Only values that all match another model's unit exactly (its code too) get WrongModel.
    """
    identity = (
        ApprovedIdentity.objects.filter(device_model=device_model, **columns)
        .select_related("device_model__vendor", "device_model__claiming_method")
        .first()
    )
    if identity is not None and proves_possession(identity, code):
        return identity

    vendor = device_model.vendor
    others = (
        ApprovedIdentity.objects.filter(
            device_model__vendor=vendor, device_model__claiming_method=device_model.claiming_method, **columns
        )
        .exclude(device_model=device_model)
        .select_related("device_model__claiming_method")
    )
    for other in others:
        if proves_possession(other, code):
            return wrong_model(device_model, other.device_model)
    return not_approved(device_model, columns)


def wrong_model(device_model, other_model):
    """The refusal of values that prove a unit of `other_model`, a model of the same vendor and method."""
    return WrongModel(
        f"These identifiers belong to a {other_model.name}, not a {device_model.name}. "
        f"Choose {other_model.name} as the model.",
        other_model=other_model,
    )


def not_approved(device_model, columns):
    """The refusal of values that prove no unit of `device_model`: the same for every wrong value."""
    fields = device_model.claiming_method.ordered_fields()
    labels = [field.label for field in fields]
    if device_model.claiming_method.requires_claim_code:
        labels.append(CLAIM_CODE_LABEL)
    named = labels[0] if len(labels) == 1 else ", ".join(labels[:-1]) + " and " + labels[-1]
    message = (
        f"You have attempted to add a {named} that is not approved for this device. This may be by error. "
        f"Please verify the exact {named} of your device and if you believe it is correct, "
        f"{vendor_support_phrase(device_model.vendor)}."
    )
    # The identifiers typed, not the claim code: a code is digits only, nothing on it to confuse.
    look_alikes = confusable_characters("".join(columns[field.column] for field in fields))
    if look_alikes:
        message += f" Check characters that are easy to confuse on a sticker: {', '.join(look_alikes)}."
    return NotApproved(message)


def claim_device(*, space, device_model, identifiers, name, actor, claim_code=None):
    """Claim the unit of `device_model` whose identifiers are `identifiers` into `space`.

    The space's organization must be connected to the model's vendor. `identifiers` maps field
    keys to values as typed (they are normalized here); `claim_code` is the code as typed, or the
    HashedClaimCode the portal kept of it, for a model whose claiming method requires one: until
    it matches, every refusal is NotApproved, so nobody who has not proven they hold the unit
    learns whether it is revoked or claimed.
    The device becomes claimed by the space's organization, in one transaction that locks the
    device row, so two organizations racing for one unit end with one claim and one
    ClaimedByAnotherOrganization. A unit just released in answer to another organization's release
    request is that organization's to claim for a while (ReservedForRequester).
    `name` is stripped, and refused (InvalidName) when empty or too long for a device's name.
    Writes a DeviceEvent. Raises a ClaimError subclass whose message is meant for the customer.
    Each attempt counts towards the actor's limit and then the organization's before it is checked
    (_claim_attempt); one that goes through, or fails for a reason other than the values typed,
    is taken back.
    """
    with _claim_attempt(actor, space.organization_id):
        name = clean_device_name(name)
        identity = _proven_identity(space.organization_id, device_model, identifiers, claim_code)
        with transaction.atomic():
            lock_target_space(space, refusal=SpaceDeleted)
            device = Device.objects.create_or_lock({identity.pk: device_model.pk})[identity.pk]
            refuse_if_claimed(device, space.organization_id)
            refuse_if_reserved(device, space.organization_id)
            now = timezone.now()
            device.status = Device.Status.CLAIMED
            device.organization_id = space.organization_id
            device.space = space
            device.name = name
            device.claimed_at = now
            device.claimed_by = actor
            device.save()
            record_change(
                device,
                DeviceEvent.Kind.CLAIMED,
                actor=actor,
                audit_action=AuditEntry.Action.DEVICE_CLAIMED,
                details={"space": space.name, "name": device.name},
                space=space,
                at=now,
            )
            record_device_events(EventName.DEVICE_CLAIMED, [device], occurred_at=now)
    return device


def check_claimable(*, organization, device_model, identifiers, actor, claim_code=None):
    """The identity claim_device would claim for these values into one of `organization`'s spaces,
    or the ClaimError it would raise (already claimed included), without claiming: what a label
    link is checked with before the wizard opens. Counted as a claim attempt like claim_device."""
    with _claim_attempt(actor, organization.pk):
        identity = _proven_identity(organization.pk, device_model, identifiers, claim_code)
        device = Device.objects.filter(identity=identity).select_related("space").first()
        if device is not None:
            refuse_if_claimed(device, organization.pk)
            refuse_if_reserved(device, organization.pk)
    return identity


def _proven_identity(organization_id, device_model, identifiers, claim_code):
    """The approved, not revoked identity the values prove, or the ClaimError saying why not."""
    vendor = device_model.vendor
    if not vendor.organizations.filter(pk=organization_id).exists():
        raise vendor_not_connected(vendor)
    columns = normalize_identifiers(device_model, identifiers)
    code = claim_code_proof(device_model, claim_code)
    found = _find_identity(device_model, columns, code)
    if isinstance(found, ClaimError):
        raise found
    if found.status == ApprovedIdentity.Status.REVOKED:
        raise revoked(vendor)
    return found


def vendor_not_connected(vendor):
    return VendorNotConnected(
        f"Your organization is not connected to {vendor.name}, so it cannot claim its devices. "
        "Ask the portal's operator to connect it."
    )


def revoked(vendor):
    return Revoked(
        f"{vendor.name} has withdrawn this unit, so it can no longer be claimed. "
        f"Please {vendor_support_phrase(vendor)}."
    )


def refuse_if_claimed(device, organization_id):
    """Raise AlreadyClaimedByYou or ClaimedByAnotherOrganization for a claimed `device` (its space and
    its model's vendor are read)."""
    if device.status != Device.Status.CLAIMED:
        return
    if device.organization_id == organization_id:
        raise AlreadyClaimedByYou(
            f"Your organization has already claimed this device: it is “{device.name}” "
            f"in the space “{device.space.name}”.",
            device=device,
        )
    raise ClaimedByAnotherOrganization(
        "This device is already claimed by another organization. If you got it from someone else, "
        f"ask them to release it; otherwise {vendor_support_phrase(device.device_model.vendor)}.",
        device=device,
    )


def reserved_for_others(device_ids, organization_id):
    """{device id: until when} for the devices of `device_ids` that only another organization may
    claim for now (released in answer to its release request), in one query."""
    return dict(
        ReleaseRequest.objects.reserving_any(device_ids)
        .exclude(requesting_organization_id=organization_id)
        .values_list("device_id", "reserved_until")
    )


def refuse_if_reserved(device, organization_id, reservations=None):
    """ReservedForRequester if `device` is reserved for another organization; `reservations` is
    reserved_for_others' answer when the caller checks many devices at once."""
    if reservations is None:
        reservations = reserved_for_others([device.pk], organization_id)
    if (until := reservations.get(device.pk)) is not None:
        raise ReservedForRequester(
            "This device was released moments ago for the organization that asked its owner for it, "
            f"which alone may claim it until {timezone.localtime(until):%Y-%m-%d %H:%M %Z}."
        )
