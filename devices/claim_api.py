"""The customer API's claims (mounted by config/customer_api.py as `claims`): one unit with
claim_device, or a list of them with claim_devices, all or none (docs/customer-api.md, Claims).

A refusal answers the claim's own code and message with the status below; a space, vendor or model
the organization does not have is a 404 naming the field, the same for another organization's
space as for none.
"""

from typing import Annotated
from uuid import UUID

from django.utils import timezone
from ninja import Field, Router, Schema, Status

from accounts.access import MANAGE, require
from portal.api_errors import StorableText
from spaces.models import Space
from vendors.models import DeviceModel, Vendor

from .bulk_claims import MAX_ROWS, ClaimRow, claim_devices
from .claims import AlreadyClaimedByYou, ClaimError, TooManyFailures, WrongModel, claim_device
from .org_api import DeviceOut
from .representation import api_devices, device_data

router = Router(tags=["claims"])

# The status of each refusal: the request cannot be one (400), the unit cannot be claimed with these
# values (422), it is someone's already (409), the organization may not claim from the vendor (403),
# too many failed attempts (429, with Retry-After), the attempts cannot be counted (503), no such
# space, vendor or model (404).
STATUS = {
    "invalid_format": 400,
    "invalid_claim_code": 400,
    "invalid_name": 400,
    "too_many_rows": 400,
    "not_found": 404,
    "not_approved": 422,
    "wrong_model": 422,
    "revoked": 422,
    "repeated_in_file": 422,
    "claimed_by_another_organization": 409,
    "already_claimed_by_you": 409,
    "space_deleted": 409,
    "reserved": 409,
    "vendor_not_connected": 403,
    "too_many_failures": 429,
    "unavailable": 503,
}
ROWS_REFUSED = "rows_refused"


class ClaimIn(Schema):
    space: UUID = Field(description="The id of one of the organization's spaces.")
    vendor: StorableText = Field(description="The vendor's slug.")
    model: StorableText = Field(description="The model's slug.")
    identifiers: dict[StorableText, StorableText] = Field(description="The model's identifier fields by key, as typed.")
    name: StorableText = Field(description="The name the device goes by in the space.")
    claim_code: StorableText | None = Field(None, description="The unit's claim code, for models that ask for one.")


class ErrorDetail(Schema):
    code: str
    message: str
    field: str | None = None


class RowOut(Schema):
    line: int = Field(description="The claim's position in the list, from 1.")
    result: str = Field(description="`claimed`, `claimable` (nothing was claimed) or the refusal's code.")
    message: str
    field: str | None = None
    device: DeviceOut | None = None


class ClaimsOut(Schema):
    claimed: int
    rows: list[RowOut]


class RowsRefused(ErrorDetail):
    rows: list[RowOut]


class ErrorOut(Schema):
    error: ErrorDetail | RowsRefused


class _Unknown(ClaimError):
    """A space, vendor or model the organization does not have (another organization's space is
    none of its own): refused before any claim, counted as no attempt."""

    code = "not_found"
    counts_as_failure = False


@router.post(
    "",
    # Every refusal's status, and those every call can answer (a bad token, the rate, a huge body).
    response={201: DeviceOut | ClaimsOut, **dict.fromkeys({*STATUS.values(), 400, 401, 413, 422, 429}, ErrorOut)},
    summary="Claim a unit, or a list of units all or none",
)
def post_claims(request, claims: ClaimIn | Annotated[list[ClaimIn], Field(min_length=1, max_length=MAX_ROWS)]):
    membership = request.auth.membership()
    require(membership, MANAGE)
    actor, organization = request.auth.user, request.auth.organization
    if not isinstance(claims, list):
        try:
            row = _rows(organization, [claims])[0]
            if row.refusal is not None:
                raise row.refusal
            device = claim_device(
                space=row.space,
                device_model=row.device_model,
                identifiers=row.identifiers,
                claim_code=row.claim_code,
                name=row.name,
                actor=actor,
            )
        except ClaimError as error:
            return _refusal(request, error)
        return Status(201, device_data(api_devices().get(pk=device.pk)))
    try:
        done = claim_devices(_rows(organization, claims), organization=organization, actor=actor)
    except ClaimError as error:
        return _refusal(request, error)
    rows = [_row_data(row) for row in done.rows]
    if done.failed:
        message = f"{len(done.failed)} of {len(rows)} claims cannot go through, so nothing was claimed."
        return _error(request, 422, ROWS_REFUSED, message, rows=rows)
    return Status(201, {"claimed": len(done.devices), "rows": rows})


def _rows(organization, claims):
    """A ClaimRow for each claim, refused with _Unknown when its space, vendor or model is: three queries."""
    spaces = {
        space.code: space
        for space in Space.objects.filter(organization=organization).filter(code__in={claim.space for claim in claims})
    }
    vendors = set(Vendor.objects.filter(slug__in={claim.vendor for claim in claims}).values_list("slug", flat=True))
    models = {
        (model.vendor.slug, model.slug): model
        for model in DeviceModel.objects.filter(
            vendor__slug__in=vendors, slug__in={claim.model for claim in claims}
        ).select_related("vendor")
    }
    rows = []
    for line, claim in enumerate(claims, 1):
        space, model = spaces.get(claim.space), models.get((claim.vendor, claim.model))
        refusal = None
        if space is None:
            refusal = _Unknown("There is no such space in your organization.", field="space")
        elif claim.vendor not in vendors:
            refusal = _Unknown("There is no vendor with this slug.", field="vendor")
        elif model is None:
            refusal = _Unknown("The vendor has no model with this slug.", field="model")
        rows.append(
            ClaimRow(line, space, model, claim.identifiers, claim.name, claim_code=claim.claim_code, refusal=refusal)
        )
    return rows


def _row_data(row):
    data = {"line": row.line, "result": row.result, "message": row.message, "field": row.field}
    if row.device is not None:
        data["device"] = device_data(row.device)
    return data


def _refusal(request, error):
    extra = {"field": error.field} if error.field else {}
    if isinstance(error, WrongModel):
        extra = {"field": "model", "model": error.other_model.slug}
    if isinstance(error, AlreadyClaimedByYou):
        extra["device"] = str(error.device.code)
    response = _error(request, STATUS.get(error.code, 400), error.code, error.message, **extra)
    if isinstance(error, TooManyFailures):
        response["Retry-After"] = str(max(1, int((error.retry_at - timezone.now()).total_seconds() + 0.999)))
    return response


def _error(request, status, code, message, **extra):
    # The one error shape of the customer API, from its module (which imports this router).
    from config.customer_api import error

    return error(request, status, code, message, **extra)
