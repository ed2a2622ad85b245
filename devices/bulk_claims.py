"""Claiming many units at once (a file of them, the customer API's list of claims): every row checked
with claim_device's own rules and wording, then every row claimed in one transaction, or none.

Set-based, so that 10,000 rows cost a handful of statements rather than 10,000 claims: the units
are looked up by joining the rows (a VALUES list) to the serial list, as activation batches look
theirs up (approved_identities), their devices created and
locked with one Device.objects.create_or_lock, claimed with one UPDATE, and their history and
audit lines written with one INSERT each (one audit line per device, as a single claim writes, so
the log and its search read the same however a device was claimed).
"""

from collections import defaultdict
from dataclasses import dataclass, field

from django.db import connection, transaction
from django.utils import timezone

from accounts.models import AuditEntry
from spaces.models import Space
from vendors.claim_codes import HashedClaimCode
from vendors.models import ApprovedIdentity, DeviceModel
from webhooks.models import EventName
from webhooks.outbox import record_device_events

from .activation_sql import approved_identities
from .claims import (
    ClaimError,
    SpaceDeleted,
    claim_code_proof,
    clean_device_name,
    count_failed_claims,
    normalize_identifiers,
    not_approved,
    proves_possession,
    refuse_if_claimed,
    refuse_if_reserved,
    reserved_for_others,
    revoked,
    vendor_not_connected,
    wrong_model,
)
from .history import record_changes
from .models import Device, DeviceEvent

MAX_ROWS = 10_000
CLAIMED = "claimed"
CLAIMABLE = "claimable"


class RepeatedUnit(ClaimError):
    """The same unit twice in one file: the later row is refused, the first keeps its result."""

    code = "repeated_in_file"
    counts_as_failure = False


class TooManyRows(ClaimError):
    code = "too_many_rows"
    counts_as_failure = False


@dataclass
class ClaimRow:
    """One claim of many: what claim_device takes, and the `line` (of the file, or the position in
    the API's list) the report names; `claim_code` as typed or as the HashedClaimCode the portal
    kept. A row its reader could not make a claim of (a line of the wrong width, a model the
    organization does not have) carries its `refusal` instead, and is reported with it."""

    line: int
    space: Space | None
    device_model: DeviceModel | None
    identifiers: dict
    name: str
    claim_code: str | HashedClaimCode | None = None
    refusal: ClaimError | None = None


@dataclass
class RowResult:
    """The report of one row: `result` is CLAIMED, CLAIMABLE (checked, not yet claimed) or the
    ClaimError code refusing it, `message` its wording for the customer."""

    line: int
    result: str
    message: str
    field: str | None = None
    device: Device | None = None

    @property
    def ok(self):
        return self.result in (CLAIMED, CLAIMABLE)


@dataclass
class BulkClaim:
    """What check_claims and claim_devices answer: one RowResult per row, in line order, and the
    devices claimed (none unless every row went through)."""

    rows: list[RowResult]
    devices: list[Device] = field(default_factory=list)

    @property
    def failed(self):
        return [row for row in self.rows if not row.ok]


@dataclass
class _Checked:
    row: ClaimRow
    name: str = ""
    columns: dict = field(default_factory=dict)
    proof: HashedClaimCode | None = None
    identity: ApprovedIdentity | None = None
    device: Device | None = None
    error: ClaimError | None = None


class _Refused(Exception):
    def __init__(self, report):
        self.report = report


def check_claims(rows, *, organization, actor):
    """What claim_devices would answer for `rows` now, without claiming anything: the report the
    file page shows before the customer confirms. The failed rows count as claim attempts of
    `actor` (count_failed_claims) before the report is returned; a file with more of them than
    the limits leave is refused as a whole (TooManyFailures), so a file of guesses gets no further
    than as many single claims would."""
    checked = _check(rows, organization, lock=False)
    _count_failures(checked, organization, actor)
    return BulkClaim(rows=[_result(item, CLAIMABLE) for item in checked])


def claim_devices(rows, *, organization, actor):
    """Claim the unit of each ClaimRow into its space (a space of `organization`), all of them in
    one transaction, or none: any row that claim_device would refuse (or that repeats an earlier
    row's unit) leaves every unit as it was, and the report says why for each row.

    Every row is checked on locked rows, as claim_device checks its one: the spaces are locked
    first (against their deletion), then every unit's device, created if it has none yet, in one
    Device.objects.create_or_lock, which locks in identity order, so this cannot deadlock with a
    single claim, an activation batch or another file sharing units. Failed rows count as claim
    attempts as in check_claims. Writes a DeviceEvent and an audit line per device. Returns a
    BulkClaim whose `devices` are the devices claimed.
    """
    try:
        with transaction.atomic():
            checked = _check(rows, organization, lock=True)
            _count_failures(checked, organization, actor)
            if any(item.error for item in checked):
                raise _Refused(BulkClaim(rows=[_result(item, CLAIMABLE) for item in checked]))
            devices = _claim(checked, organization, actor)
            record_device_events(EventName.DEVICE_CLAIMED, devices)
    except _Refused as refused:
        return refused.report
    return BulkClaim(rows=[_result(item, CLAIMED) for item in checked], devices=devices)


def _count_failures(checked, organization, actor):
    failures = sum(1 for item in checked if item.error is not None and item.error.counts_as_failure)
    count_failed_claims(actor, organization.pk, failures)


def _result(item, ok):
    if item.error is not None:
        return RowResult(item.row.line, item.error.code, item.error.message, item.error.field)
    return RowResult(item.row.line, ok, "", device=item.device)


def _check(rows, organization, *, lock):
    """Each row with its unit and device, or the ClaimError claim_device would raise for it, in
    claim_device's order of checks; the spaces and devices locked when `lock`."""
    rows = sorted(rows, key=lambda row: row.line)
    if len(rows) > MAX_ROWS:
        raise TooManyRows(f"At most {MAX_ROWS:,} devices can be claimed at once; split the file.")
    readable = [row for row in rows if row.refusal is None]
    spaces = Space.objects.filter(organization=organization, pk__in={row.space.pk for row in readable})
    if lock:
        # The order every rule that locks spaces before devices follows (delete a space, move, claim).
        spaces = spaces.select_for_update(no_key=True).order_by("pk")
    live_spaces = set(spaces.values_list("pk", flat=True))
    connected = set(organization.connected_vendors.values_list("pk", flat=True))
    # The models with what the checks read, once for all rows, whatever the caller loaded.
    models = (
        DeviceModel.objects.select_related("vendor", "claiming_method")
        .prefetch_related("claiming_method__fields")
        .in_bulk({row.device_model.pk for row in readable})
    )
    for row in readable:
        row.device_model = models[row.device_model.pk]
    checked = [_Checked(row, error=row.refusal) for row in rows]
    first_line = {}
    for item in checked:
        row = item.row
        if item.error is not None:
            continue
        try:
            item.name = clean_device_name(row.name)
            if row.device_model.vendor_id not in connected:
                raise vendor_not_connected(row.device_model.vendor)
            item.columns = normalize_identifiers(row.device_model, row.identifiers)
            item.proof = claim_code_proof(row.device_model, row.claim_code)
            unit = (row.device_model.pk, *sorted(item.columns.items()))
            if unit in first_line:
                raise RepeatedUnit(f"This unit is on line {first_line[unit]} already: claim it once.")
            first_line[unit] = row.line
        except ClaimError as error:
            item.error = error
    _find_units([item for item in checked if item.error is None])
    for item in checked:
        if item.error is None and item.row.space.pk not in live_spaces:
            item.error = SpaceDeleted(f"The space “{item.row.space.name}” was deleted meanwhile.")
    _find_devices([item for item in checked if item.error is None], organization, lock=lock)
    return checked


def _find_units(checked):
    """Give each row the approved identity its values prove, or claim_device's refusal (NotApproved,
    WrongModel, Revoked): one statement per model (approved_identities, as activation batches look
    their units up), whatever the number of rows."""
    for item, found in zip(
        checked, _identities([(item.row.device_model, item.columns) for item in checked]), strict=True
    ):
        if found is not None and proves_possession(found, item.proof):
            item.identity = found
    unproven = [item for item in checked if item.identity is None]
    # Values that prove a unit of another model of the vendor with the same method get WrongModel.
    siblings = defaultdict(list)
    for model in DeviceModel.objects.filter(
        vendor__in={item.row.device_model.vendor_id for item in unproven}
    ).select_related("claiming_method"):
        siblings[model.vendor_id, model.claiming_method_id].append(model)
    elsewhere = [
        (item, other)
        for item in unproven
        for other in siblings[item.row.device_model.vendor_id, item.row.device_model.claiming_method_id]
        if other.pk != item.row.device_model.pk
    ]
    other_model = {}
    for (item, other), found in zip(
        elsewhere, _identities([(other, item.columns) for item, other in elsewhere]), strict=True
    ):
        if found is not None and proves_possession(found, item.proof):
            other_model.setdefault(item.row.line, other)
    for item in unproven:
        other = other_model.get(item.row.line)
        model = item.row.device_model
        item.error = wrong_model(model, other) if other else not_approved(model, item.columns)
    for item in checked:
        if item.identity is not None and item.identity.status == ApprovedIdentity.Status.REVOKED:
            item.error, item.identity = revoked(item.row.device_model.vendor), None


def _identities(wanted):
    """For each (device model, normalized {column: value}) of `wanted`, the approved identity it
    names (an unsaved copy holding what the claim reads), or None."""
    return [
        None
        if found is None
        else ApprovedIdentity(
            pk=found[0], device_model=device_model, status=found[1], claim_code_hash=found[2], **columns
        )
        for (device_model, columns), found in zip(wanted, approved_identities(wanted), strict=True)
    ]


def _find_devices(checked, organization, *, lock):
    """Give each row its unit's device (created and locked when `lock`), or claim_device's refusal
    of a unit that is claimed already."""
    units = {item.identity.pk: item.row.device_model.pk for item in checked}
    if lock:
        devices = Device.objects.create_or_lock(units)
    else:
        devices = {device.identity_id: device for device in Device.objects.filter(identity_id__in=units)}
    claimed = [device for device in devices.values() if device.status == Device.Status.CLAIMED]
    spaces = Space.objects.in_bulk({device.space_id for device in claimed})
    reservations = reserved_for_others([device.pk for device in devices.values()], organization.pk)
    for item in checked:
        device = devices.get(item.identity.pk)
        if device is None:
            continue
        device.identity, device.device_model = item.identity, item.row.device_model
        if device.space_id is not None:
            device.space = spaces[device.space_id]
        try:
            refuse_if_claimed(device, organization.pk)
            refuse_if_reserved(device, organization.pk, reservations)
        except ClaimError as error:
            item.error = error
        item.device = device


def _claim(checked, organization, actor):
    """Claim every checked row's locked device into its space with one UPDATE, and write their history."""
    if not checked:
        return []
    now = timezone.now()
    values = ", ".join(["(%s, %s, %s)"] * len(checked))
    params = [value for item in checked for value in (item.device.pk, item.row.space.pk, item.name)]
    sql = f"""
        WITH claimed (id, space_id, name) AS (VALUES {values})
        UPDATE devices_device SET status = %s, organization_id = %s, space_id = claimed.space_id,
            name = claimed.name, claimed_at = %s, claimed_by_id = %s
        FROM claimed WHERE devices_device.id = claimed.id
    """  # noqa: S608 - the table is the model's, values are parameters
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, Device.Status.CLAIMED, organization.pk, now, actor.pk])
    for item in checked:
        device = item.device
        device.status, device.organization = Device.Status.CLAIMED, organization
        device.space, device.name, device.claimed_at, device.claimed_by = item.row.space, item.name, now, actor
    record_changes(
        [(item.device, {"space": item.row.space.name, "name": item.name}, item.row.space) for item in checked],
        DeviceEvent.Kind.CLAIMED,
        actor=actor,
        audit_action=AuditEntry.Action.DEVICE_CLAIMED,
        at=now,
    )
    return [item.device for item in checked]
