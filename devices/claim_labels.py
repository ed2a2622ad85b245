"""A QR label link on its way into the claim wizard.

Opening a label's link (vendors/labels.py) keeps its payload in the session, which survives
signing in; once the person has chosen the space, the label is checked as a claim attempt
(claims.check_claimable: a forged code counts against the limits as a typed one does, and a unit
already claimed says so only once the code has matched), then handed to that space's wizard,
which opens at its name step. Nothing here writes the claim code into a page or a URL.
"""

from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.shortcuts import render

from accounts.access import MANAGE, allows
from accounts.models import Membership
from spaces.models import Space
from vendors.labels import LabelPayloadError, parse_label_payload
from vendors.models import DeviceModel

from .claims import CLAIM_CODE_FIELD, check_claimable

KEPT = "claim_label"  # the payload of the label opened, until it is checked
CHECKED = "claim_label_checked"  # {"payload", "space"}: checked for that space, for its wizard to open


class LabelRefused(Exception):
    """A label link that leads nowhere; its message is shown to the person who opened it."""

    def __init__(self, message):
        super().__init__(message)
        self.message = message


MALFORMED = LabelRefused(
    "This link is not the label of a device this portal knows: it may have been cut short or altered. "
    "Scan the QR code on the device's label again, or type its serial number and claim code in "
    "+ Claim Device instead."
)
NO_LABEL = LabelRefused("There is no label to continue with. Scan the QR code on the device's label again.")


@dataclass(frozen=True)
class Label:
    """What a label's payload names: a model of this portal, the identifiers and the claim code."""

    payload: str
    device_model: DeviceModel
    identifiers: dict
    claim_code: str | None

    def typed_values(self):
        """The identifier step's answers: each field's value, and the claim code."""
        fields = self.device_model.claiming_method.ordered_fields()
        values = {field.key: self.identifiers.get(field.key, "") for field in fields}
        if self.device_model.claiming_method.requires_claim_code:
            values[CLAIM_CODE_FIELD] = self.claim_code or ""
        return values

    def identifier_rows(self):
        """(label, value) of each identifier, as the portal writes it: shown on every page of the flow."""
        rows = []
        for field in self.device_model.claiming_method.ordered_fields():
            raw = self.identifiers.get(field.key, "")
            try:
                rows.append((field.label, field.clean_value(raw)))
            except ValidationError:
                rows.append((field.label, raw))
        return rows

    def serial_text(self):
        return " / ".join(value for _, value in self.identifier_rows())

    def spaces_for(self, user):
        """The spaces `user` may claim this unit into: of organizations where they are an owner or an
        admin, connected to the model's vendor."""
        organizations = [
            membership.organization_id
            for membership in Membership.objects.filter(
                user=user, organization__connected_vendors=self.device_model.vendor_id
            )
            if allows(membership, MANAGE)
        ]
        return list(
            Space.objects.filter(organization_id__in=organizations)
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


def _resolve(payload):
    try:
        content = parse_label_payload(payload)
    except LabelPayloadError:
        raise MALFORMED from None
    device_model = (
        DeviceModel.objects.select_related("vendor", "claiming_method")
        .prefetch_related("claiming_method__fields")
        .filter(vendor__slug=content["vendor"], slug=content["model"])
        .first()
    )
    if device_model is None:
        raise MALFORMED
    return Label(payload, device_model, content["identifiers"], content["claim_code"])


def keep_label(request, payload):
    """The Label of `payload`, kept in the session; raises LabelRefused for one this portal did not write."""
    label = _resolve(payload)
    request.session[KEPT] = payload
    request.session.pop(CHECKED, None)
    return label


def kept_label(request):
    """The label kept in the session, or None."""
    payload = request.session.get(KEPT)
    if payload is None:
        return None
    try:
        return _resolve(payload)
    except LabelRefused:
        del request.session[KEPT]
        return None


def check_label(request, label, space):
    """Check `label` as a claim into `space` (claims.check_claimable, counted as an attempt) and,
    if it would go through, hand it to that space's wizard. Raises the ClaimError, forgetting the label."""
    del request.session[KEPT]
    check_claimable(
        organization=space.organization,
        device_model=label.device_model,
        identifiers=label.identifiers,
        claim_code=label.claim_code,
        actor=request.user,
    )
    request.session[CHECKED] = {"payload": label.payload, "space": str(space.code)}


def take_checked_label(request, space):
    """The label checked for `space`, taken out of the session (the wizard opens with it once), or None."""
    checked = request.session.get(CHECKED)
    if not checked or checked.get("space") != str(space.code):
        return None
    del request.session[CHECKED]
    try:
        return _resolve(checked["payload"])
    except LabelRefused:
        return None


def render_refused(request, refusal, *, label=None, status):
    """The page of a label link that cannot be claimed: why, and which unit it named."""
    context = {"message": refusal.message, "label": label, "device": getattr(refusal, "device", None)}
    return render(request, "devices/claim_label_refused.html", context, status=status)
