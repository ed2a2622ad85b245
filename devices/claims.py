"""Claiming a device: the one function the wizard, the admin, the API and the CLI call.

The wording of the errors follows the vendor's support guide (shared seeds): a customer who
sees one of them knows whether to re-check the sticker, ask the previous owner, or call the vendor.
"""

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from accounts.models import AuditEntry
from portal.errors import UserFacingError
from portal.ratelimit import RateLimit, RateLimitExceeded, RateLimitUnavailable, count_attempt, take_back
from vendors.identifiers import confusable_characters
from vendors.models import ApprovedIdentity

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


class NotApproved(ClaimError):
    code = "not_approved"


class WrongModel(ClaimError):
    code = "wrong_model"

    def __init__(self, message, *, other_model):
        super().__init__(message)
        self.other_model = other_model


class Revoked(ClaimError):
    code = "revoked"


class ClaimedByAnotherOrganization(ClaimError):
    code = "claimed_by_another_organization"


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


# Claim attempts are limited per user (portal/ratelimit.py): counted before the claim is checked,
# and taken back when it goes through or fails for a reason that is no guess at a sticker.
CLAIM_ATTEMPTS = RateLimit("claims:user", limit="CLAIM_FAILURE_LIMIT", window="CLAIM_FAILURE_WINDOW")


def _count_claim_attempt(user):
    try:
        count_attempt((CLAIM_ATTEMPTS, user.pk))
    except RateLimitExceeded as exceeded:
        retry_at = exceeded.retry_at
        raise TooManyFailures(
            f"Too many failed claim attempts. For your security, claiming is paused for your account; "
            f"try again after {timezone.localtime(retry_at):%H:%M %Z}.",
            retry_at=retry_at,
        ) from None
    except RateLimitUnavailable:
        raise ClaimingUnavailable(
            "Claiming is unavailable for a moment because the portal cannot count claim attempts. "
            "Please try again in a minute."
        ) from None


def _find_identity(device_model, columns):
    """The approved identity of `device_model` matching every value, or a ClaimError saying why not."""
    identity = (
        ApprovedIdentity.objects.filter(device_model=device_model, **columns)
        .select_related("device_model__vendor")
        .first()
    )
    if identity is not None:
        return identity

    vendor = device_model.vendor
    other = (
        ApprovedIdentity.objects.filter(
            device_model__vendor=vendor, device_model__claiming_method=device_model.claiming_method, **columns
        )
        .exclude(device_model=device_model)
        .select_related("device_model")
        .first()
    )
    if other is not None:
        return WrongModel(
            f"These identifiers belong to a {other.device_model.name}, not a {device_model.name}. "
            f"Choose {other.device_model.name} as the model.",
            other_model=other.device_model,
        )

    # Name the first field whose value this model does not know; if each value is known on
    # its own but not together, the mistyped one is the last field.
    fields = device_model.claiming_method.ordered_fields()
    culprit = fields[-1]
    for field in fields:
        if not ApprovedIdentity.objects.filter(
            device_model=device_model, **{field.column: columns[field.column]}
        ).exists():
            culprit = field
            break
    label = culprit.label
    message = (
        f"You have attempted to add a {label} that is not approved for this device. This may be by error. "
        f"Please verify the exact {label} of your device and if you believe it is correct, "
        f"{vendor_support_phrase(vendor)}."
    )
    look_alikes = confusable_characters(columns[culprit.column])
    if look_alikes:
        message += f" Check characters that are easy to confuse on a sticker: {', '.join(look_alikes)}."
    return NotApproved(message, field=culprit.key)


def claim_device(*, space, device_model, identifiers, name, actor):
    """Claim the unit of `device_model` whose identifiers are `identifiers` into `space`.

    The space's organization must be connected to the model's vendor. `identifiers` maps field
    keys to values as typed (they are normalized here). The device becomes claimed by the space's
    organization, in one transaction that locks the device row, so two organizations racing for
    one unit end with one claim and one ClaimedByAnotherOrganization.
    Writes a DeviceEvent. Raises a ClaimError subclass whose message is meant for the customer.
    Each attempt counts towards the actor's limit before it is checked; one that goes through, or
    fails for a reason other than the identifiers, is taken back.
    """
    _count_claim_attempt(actor)
    try:
        device = _claim(space=space, device_model=device_model, identifiers=identifiers, name=name, actor=actor)
    except ClaimError as error:
        if not error.counts_as_failure:
            take_back(CLAIM_ATTEMPTS, actor.pk)
        raise
    take_back(CLAIM_ATTEMPTS, actor.pk)
    return device


def _claim(*, space, device_model, identifiers, name, actor):
    vendor = device_model.vendor
    if not vendor.organizations.filter(pk=space.organization_id).exists():
        raise VendorNotConnected(
            f"Your organization is not connected to {vendor.name}, so it cannot claim its devices. "
            "Ask the portal's operator to connect it."
        )
    columns = normalize_identifiers(device_model, identifiers)
    found = _find_identity(device_model, columns)
    if isinstance(found, ClaimError):
        raise found
    identity = found
    if identity.status == ApprovedIdentity.Status.REVOKED:
        raise Revoked(
            f"{vendor.name} has withdrawn this unit, so it can no longer be claimed. "
            f"Please {vendor_support_phrase(vendor)}."
        )

    with transaction.atomic():
        lock_target_space(space, refusal=SpaceDeleted)
        device = Device.objects.create_or_lock({identity.pk: device_model.pk})[identity.pk]
        if device.status == Device.Status.CLAIMED:
            if device.organization_id == space.organization_id:
                raise AlreadyClaimedByYou(
                    f"Your organization has already claimed this device: it is “{device.name}” "
                    f"in the space “{device.space.name}”.",
                    device=device,
                )
            raise ClaimedByAnotherOrganization(
                "This device is already claimed by another organization. If you got it from someone else, "
                f"ask them to release it; otherwise {vendor_support_phrase(vendor)}."
            )
        now = timezone.now()
        device.status = Device.Status.CLAIMED
        device.organization_id = space.organization_id
        device.space = space
        device.name = name.strip()
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
    return device
