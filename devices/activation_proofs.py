"""The proofs of possession an activation may have to carry beyond the identifiers: the unit's
claim code, and factory attestation by the unit's own key (vendors/attestation.py).

The rule (activation.py) asks here, for a whole batch of operations at once; each failure is a
precise ActivationOperation.Reason, which only vendor staff see.
"""

import hashlib
from dataclasses import dataclass
from datetime import timedelta

from vendors.attestation import (
    ATTESTATION_FIELDS,
    SIGNED_AT_TOLERANCE,
    b64url_decode,
    certificate_message,
    parse_signed_at,
    request_message,
    signature_is_valid,
)
from vendors.claim_codes import ClaimCodeError, claim_code_hash_matches, hash_claim_code, normalize_claim_code

from .activation_sql import claim_signatures, production_batches
from .models import ActivationOperation

Reason = ActivationOperation.Reason

# Stored for a claim code that is no claim code at all: it can match no unit's hash (hex digits).
MALFORMED_CLAIM_CODE = "malformed"
# How long a used request signature is remembered. A copy of it is refused as stale once its
# signed_at is more than SIGNED_AT_TOLERANCE from when the copy arrived; an operation that waited
# longer than SIGNATURE_MAX_WAIT to be processed is refused too, so no copy outlives the record.
USED_SIGNATURES_KEPT = timedelta(days=1)
SIGNATURE_MAX_WAIT = USED_SIGNATURES_KEPT - 2 * SIGNED_AT_TOLERANCE


def stored_claim_code(raw: str | None) -> str:
    """What an operation keeps of the claim code its request carried: the keyed hash of the
    normalized code, MALFORMED_CLAIM_CODE for a string that is no claim code, "" for none.

    A malformed code is kept as a failed proof like a wrong one, not refused as a bad request:
    the answer must not tell which codes are well-formed guesses.
    """
    if raw is None:
        return ""
    try:
        return hash_claim_code(normalize_claim_code(raw))
    except ClaimCodeError:
        return MALFORMED_CLAIM_CODE


def claim_code_refusal(operation, identity_claim_code_hash) -> str | None:
    """The Reason the operation's claim code fails for a unit whose code hashes to
    `identity_claim_code_hash`, or None if it is the unit's (compared in constant time)."""
    if not operation.claim_code_hash:
        return Reason.CLAIM_CODE_MISSING
    if not claim_code_hash_matches(operation.claim_code_hash, identity_claim_code_hash):
        return Reason.CLAIM_CODE_WRONG
    return None


@dataclass(frozen=True)
class AttestedUnit:
    """An operation whose unit must present factory attestation: its model and normalized identifiers ({key: value})."""

    operation: ActivationOperation
    device_model_id: int
    vendor_slug: str
    model_slug: str
    identifiers: dict


def attestation_refusals(units: list[AttestedUnit], now) -> dict:
    """{operation id: Reason} for the units whose attestation fails; the request signatures of the
    others are recorded as used (in the caller's transaction), so they never activate again.

    Looks the batches up in one query and records the signatures in one statement, whatever the
    number of units. A request that fails carries a copy of a signature at best: it burns nothing.
    """
    batches = production_batches(
        {
            (unit.device_model_id, attestation["batch"])
            for unit in units
            if (attestation := _request_attestation(unit.operation))
        }
    )
    refusals, verified = {}, {}
    for unit in units:
        reason = _attestation_refusal(unit, batches, now)
        signature_hash = None if reason else _signature_hash(unit.operation.attestation["signature"])
        if reason is None and signature_hash in verified:
            reason = Reason.SIGNATURE_REPLAYED  # twice in one batch: the first one uses it
        if reason:
            refusals[unit.operation.pk] = reason
        else:
            verified[signature_hash] = unit.operation.pk
    fresh = claim_signatures(list(verified), now)
    for signature_hash, operation_id in verified.items():
        if signature_hash not in fresh:
            refusals[operation_id] = Reason.SIGNATURE_REPLAYED
    return refusals


def _request_attestation(operation) -> dict | None:
    """The operation's attestation if it has every field of the request's attestation, else None:
    none was sent, or the operation was queued in an older format (the batch key's signature of
    the identifiers alone), which proves no unit key and fails as a missing attestation."""
    attestation = operation.attestation
    if not isinstance(attestation, dict):
        return None
    if not all(isinstance(attestation.get(name), str) for name in ATTESTATION_FIELDS):
        return None
    return attestation


def _attestation_refusal(unit: AttestedUnit, batches, now) -> str | None:
    operation, attestation = unit.operation, _request_attestation(unit.operation)
    if attestation is None:
        return Reason.ATTESTATION_MISSING
    batch = batches.get((unit.device_model_id, attestation["batch"]))
    if batch is None:
        return Reason.UNKNOWN_BATCH
    batch_public_key, batch_revoked = batch
    if batch_revoked:
        return Reason.BATCH_REVOKED
    certified = certificate_message(
        unit.vendor_slug, unit.model_slug, attestation["batch"], unit.identifiers, attestation["unit_public_key"]
    )
    if not signature_is_valid(batch_public_key, certified, attestation["certificate"]):
        return Reason.CERTIFICATE_INVALID
    signed = request_message(
        operation.vendor_slug,
        operation.model_slug,
        operation.identifiers,
        operation.device_public_key,
        attestation["signed_at"],
    )
    if not signature_is_valid(attestation["unit_public_key"], signed, attestation["signature"]):
        return Reason.SIGNATURE_INVALID
    # The API checked the shape only: a time that does not exist (February 30th) is no fresher.
    signed_at = parse_signed_at(attestation["signed_at"])
    if signed_at is None or abs(signed_at - operation.created_at) > SIGNED_AT_TOLERANCE:
        return Reason.SIGNATURE_STALE
    if now - operation.created_at > SIGNATURE_MAX_WAIT:
        return Reason.SIGNATURE_STALE
    return None


def _signature_hash(signature: str) -> str:
    return hashlib.sha256(b64url_decode(signature)).hexdigest()
