"""A QR label link on its way into the claim wizard.

Opening a label's link (vendors/labels.py) keeps what its payload says in the session, the claim
code as its keyed hash only (vendors.claim_codes.HashedClaimCode), for LIFETIME seconds, and
redirects at once to /claim/label/: the payload, code included, appears in that one request line
and nowhere else the portal writes. Nothing is looked up before that redirect, so the answer is
the same whatever the payload names, to anyone. Signed in (the session survives signing in), the
label is read: a payload whose model the portal does not know, or whose values do not pass the
claiming method's own checks, is malformed and counts as no claim attempt. Once the person has
confirmed the space, the label is checked as a claim attempt (claims.check_claimable: a forged
code counts against the limits as a typed one does, and a unit already claimed says so only once
the code has matched), then handed to that space's wizard, which opens at its name step.
"""

import time
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.shortcuts import render

from accounts.access import MANAGE, organizations_allowing
from spaces.models import Space
from vendors.claim_codes import ClaimCodeError, HashedClaimCode, normalize_claim_code
from vendors.labels import LabelPayloadError, parse_label_payload
from vendors.models import DeviceModel

from .claims import (
    CLAIM_CODE_FIELD,
    AlreadyClaimedByYou,
    ClaimingUnavailable,
    TooManyFailures,
    WrongModel,
    check_claimable,
    vendor_support_phrase,
)

KEPT = "claim_label"  # {"content", "until"}: the label opened, until it is checked
CHECKED = "claim_label_checked"  # {"content", "space", "until"}: checked for that space, for its wizard
# A label waits this long (seconds) for its person to sign in and choose the space.
LIFETIME = 15 * 60


class LabelRefused(Exception):
    """A label link that leads nowhere; its message is shown to the person who opened it."""

    def __init__(self, message):
        super().__init__(message)
        self.message = message


def malformed():
    return LabelRefused(
        "This link is not the label of a device this portal knows: it may have been cut short or altered. "
        "Scan the QR code on the device's label again, or type its serial number and claim code in "
        "+ Claim Device instead."
    )


def no_label():
    return LabelRefused("There is no label to continue with. Scan the QR code on the device's label again.")


@dataclass(frozen=True)
class Label:
    """What a label names: a model of this portal, its identifiers (each passed its field's check,
    as the portal writes it) and the claim code's hash. `content` is what the session keeps of it."""

    content: dict
    device_model: DeviceModel
    identifiers: dict
    claim_code: HashedClaimCode | None

    def typed_values(self):
        """The identifier step's answers: each field's value, and the claim code's hash."""
        values = dict(self.identifiers)
        if self.claim_code is not None:
            values[CLAIM_CODE_FIELD] = self.claim_code
        return values

    def identifier_rows(self):
        """(label, value) of each identifier: shown on every page of the flow."""
        return [
            (field.label, self.identifiers[field.key]) for field in self.device_model.claiming_method.ordered_fields()
        ]

    def spaces_for(self, user):
        """The spaces `user` may claim this unit into: of organizations where their role may claim
        (accounts.access), connected to the model's vendor."""
        return list(
            Space.objects.for_user(user)
            .filter(
                organization_id__in=organizations_allowing(user, MANAGE),
                organization__connected_vendors=self.device_model.vendor_id,
            )
            .select_related("organization")
            .order_by("organization__name", "name")
        )

    def no_space_refusal(self):
        vendor = self.device_model.vendor
        return LabelRefused(
            f"You cannot claim this {self.device_model.name} into any space: devices of {vendor.name} are "
            f"claimed by the owners and admins of an organization connected to {vendor.name}. "
            "Ask one of them, or sign in with another account."
        )


def _kept_content(payload):
    """What the session keeps of `payload`, the claim code replaced by its hash; None for a payload
    this portal would not have written (a code of the wrong form included: labels carry valid ones)."""
    try:
        content = parse_label_payload(payload)
        code = content["claim_code"]
        code_hash = HashedClaimCode.of(normalize_claim_code(code)).digest if code is not None else None
    except (LabelPayloadError, ClaimCodeError):
        return None
    return {
        "vendor": content["vendor"],
        "model": content["model"],
        "identifiers": content["identifiers"],
        "code": code_hash,
    }


def keep_label(request, payload):
    """Keep what the label link's `payload` says in the session, whatever it is (read later, by kept_label)."""
    request.session[KEPT] = {"content": _kept_content(payload), "until": time.time() + LIFETIME}
    request.session.pop(CHECKED, None)


def forget_label(request):
    request.session.pop(KEPT, None)
    request.session.pop(CHECKED, None)


def _resolve(content):
    """The Label `content` names; raises LabelRefused for one this portal did not write."""
    if content is None:
        raise malformed()
    device_model = (
        DeviceModel.objects.select_related("vendor", "claiming_method")
        .prefetch_related("claiming_method__fields")
        .filter(vendor__slug=content["vendor"], slug=content["model"])
        .first()
    )
    if device_model is None:
        raise malformed()
    identifiers = {}
    for field in device_model.claiming_method.ordered_fields():
        try:
            identifiers[field.key] = field.clean_value(content["identifiers"].get(field.key, ""))
        except ValidationError:
            raise malformed() from None
    requires_code = device_model.claiming_method.requires_claim_code
    if requires_code and content["code"] is None:
        raise malformed()
    return Label(content, device_model, identifiers, HashedClaimCode(content["code"]) if requires_code else None)


def _unexpired(request, key):
    kept = request.session.get(key)
    if kept is not None and kept["until"] < time.time():
        del request.session[key]
        return None
    return kept


def kept_label(request):
    """The Label kept in the session, or None (none kept, or kept longer than LIFETIME); raises
    LabelRefused, forgetting it, for a malformed one."""
    kept = _unexpired(request, KEPT)
    if kept is None:
        return None
    try:
        return _resolve(kept["content"])
    except LabelRefused:
        forget_label(request)
        raise


def sign_in_message(request):
    """What the sign-in page says to a visitor who opened a label link: the model and the serial
    number (or other identifiers) it names, when the label is well formed, so that the person sees
    which device they are about to claim; one general sentence otherwise. Only the model is looked
    up, never the unit: a signed-out visitor learns at most that a model exists, as the vendor's
    catalogue says anyway, and reads back only values that passed their field's own check."""
    try:
        label = kept_label(request)
    except LabelRefused:
        label = None
    if label is None:
        return "Sign in to claim the device whose label you opened."
    named = ", ".join(f"{field} {value}" for field, value in label.identifier_rows())
    return f"Sign in to claim the {label.device_model.name} with {named}."


def check_label(request, label, space):
    """Check `label` as a claim into `space` (claims.check_claimable, counted as an attempt) and,
    if it would go through, hand it to that space's wizard. Raises the ClaimError, the label kept."""
    check_claimable(
        organization=space.organization,
        device_model=label.device_model,
        identifiers=label.identifiers,
        claim_code=label.claim_code,
        actor=request.user,
    )
    request.session.pop(KEPT, None)
    request.session[CHECKED] = {"content": label.content, "space": str(space.code), "until": time.time() + LIFETIME}


def keep_unit(request, identity, claim_code_hash):
    """Keep the unit `identity`, proven before with the claim code whose keyed hash is
    `claim_code_hash` (empty for models without codes), as if its label had been opened: what lets
    a release request's requester claim the released unit without typing its values again."""
    model = identity.device_model
    content = {
        "vendor": model.vendor.slug,
        "model": model.slug,
        "identifiers": identity.identifiers,
        "code": claim_code_hash or None,
    }
    request.session[KEPT] = {"content": content, "until": time.time() + LIFETIME}
    request.session.pop(CHECKED, None)


def take_checked_label(request, space):
    """The label checked for `space`, taken out of the session (the wizard opens with it once), or None."""
    checked = _unexpired(request, CHECKED)
    if not checked or checked["space"] != str(space.code):
        return None
    del request.session[CHECKED]
    try:
        return _resolve(checked["content"])
    except LabelRefused:
        return None


def render_refused(request, refusal, *, label=None, status, ask_release_url=None):
    """The page of a label link that cannot be claimed: why, and which unit it named (and, for a
    unit another organization holds, the link to ask it for a release). The label is forgotten:
    scanning it again starts afresh."""
    forget_label(request)
    context = {"message": refusal.message, "label": label, "ask_release_url": ask_release_url}
    if isinstance(refusal, AlreadyClaimedByYou):
        context["device"] = refusal.device
    return render(request, "devices/claim_label_refused.html", context, status=status)


def render_claim_refused(request, error, label, *, ask_release_url=None):
    """The page of a label whose check (check_label) raised the ClaimError `error`. With the attempts
    uncountable for a moment the label is kept (503), so that trying again needs no new scan."""
    if isinstance(error, ClaimingUnavailable):
        context = {"message": error.message, "label": label, "device": None}
        return render(request, "devices/claim_label_refused.html", context, status=503)
    if isinstance(error, WrongModel):
        # The wizard says "choose the other model"; a label has no model to choose: it is misprinted.
        error = LabelRefused(
            f"This label says {label.device_model.name}, but the unit it names is a {error.other_model.name}: "
            f"the label may be misprinted. Please {vendor_support_phrase(label.device_model.vendor)}."
        )
    status = 429 if isinstance(error, TooManyFailures) else 400
    return render_refused(request, error, label=label, status=status, ask_release_url=ask_release_url)
