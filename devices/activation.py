"""Activating a device: the rule that decides whether a unit may exchange a key with the server.

`process_activations` is the one function that applies it, to a batch of waiting operations at a
time; the queue that feeds it (activation_queue.py), the claim-code and attestation checks it asks
(activation_proofs.py), its plain statements (activation_sql.py) and the device's later
authentication (authentication.py) live apart.
"""

import time
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from django.utils import timezone

from portal.errors import UserFacingError
from vendors.attestation import b64url_decode, b64url_encode
from vendors.identifiers import Normalization, normalize
from vendors.models import ApprovedIdentity, Attestation, ClaimingMethod, DeviceModel, IdentifierField, Vendor

from .actions import record_activations
from .activation_proofs import AttestedUnit, attestation_refusals, claim_code_refusal
from .activation_sql import approved_identities, lock_waiting, save_finished
from .claims import InvalidIdentifier, normalize_identifiers
from .keys import InvalidPublicKey, derive_device_key, hash_device_key, public_bytes, shared_secret
from .models import ActivationOperation, Device

MODEL_CACHE_SECONDS = 10
_model_cache = {}

Error = ActivationOperation.Error
Reason = ActivationOperation.Reason

# The one answer of every failed proof, whatever failed: telling an unknown unit from a revoked
# one, or a wrong claim code from a stale signature, would tell an outsider what exists.
NOT_APPROVED_MESSAGE = (
    "This unit is not approved for activation with what it sent. Check its identifiers, and its claim code "
    "or factory attestation if its model requires one; if they are right, contact the vendor's support."
)
# The error codes an operation may fail with (the OpenAPI description lists these).
ANSWERED_ERRORS = [Error.NOT_APPROVED, Error.UNKNOWN_MODEL, Error.INVALID_PUBLIC_KEY, Error.ALREADY_ACTIVATED]


class ActivationRefused(UserFacingError):
    """The operation fails with `code` (one of ActivationOperation.Error) and a message for the
    device's maker; `reason` (an ActivationOperation.Reason) says why precisely, for vendor staff."""

    def __init__(self, code, message, reason=""):
        super().__init__(message)
        self.code = code
        self.reason = reason


def proof_failed(reason):
    """The refusal of a failed proof of possession: the same code and message whatever `reason`."""
    return ActivationRefused(Error.NOT_APPROVED, NOT_APPROVED_MESSAGE, reason)


# A claim code is 11 digits, typed with any spaces or dashes: room for those, no more.
MAX_CLAIM_CODE = 32


@dataclass(frozen=True)
class ActivationRequest:
    """A well-formed activation request (the API checked its shape; the rule checks its meaning)."""

    vendor: str
    model: str
    identifiers: dict
    public_key: str
    attestation: dict | None = None
    claim_code: str | None = None

    def identity_key(self):
        """The unit the request is about, for the per-identity rate limit; separators and case do not matter."""
        values = "/".join(
            f"{key}={normalize(value, Normalization.COMPACT).replace(':', '')}"
            for key, value in sorted(self.identifiers.items())
        )
        return f"{self.vendor.lower()}/{self.model.lower()}/{values}"


def process_activations(
    operation_ids=None, *, exclude=(), limit: int | None = None, now=None
) -> list[ActivationOperation]:
    """Process activation operations that are still assigning, all in one transaction: those of
    `operation_ids`, or else (up to `limit` of) those waiting longest, as at `now` (default: the
    clock). Returns them, finished.

    For each, checks in order: the vendor's model exists (unknown_model), the device's public key
    (invalid_public_key), then the proof of possession: the identifiers are the model's and on its
    approved list, the unit is not withdrawn, the claim code when the model requires one, and the
    factory attestation when it requires one. Every failed proof fails alike (not_approved, one
    message) and records its precise reason (refusal_reason) for vendor staff. Last, that the unit
    has not activated already unless its re-activation window is open (already_activated, said only
    to a valid proof; of two operations for one unit in a batch, the first wins). Then derives the
    device key and stores only its hash and the address it was issued to (record_activations), and
    the server's public key.

    The batch runs a fixed handful of statements whatever its size: one to look its units up, one
    for its production batches and one to record its request signatures as used (when its units
    are attested), one to create-or-lock their devices, and pipelined writes. Idempotent: each
    operation row is locked, rows another worker holds are skipped, and only an operation still
    assigning is processed, so running twice, or being killed and re-run, leaves one key and one event.
    """
    with transaction.atomic():
        operations = lock_waiting(operation_ids, exclude, limit)
        now = now or timezone.now()
        proofs = _check_proofs(operations, now)
        passed = [proof for proof in proofs.values() if isinstance(proof, _Proof)]
        devices = Device.objects.create_or_lock({proof.identity_id: proof.device_model.pk for proof in passed})
        new_keys, issued_from = {}, {}
        for operation in operations:
            try:
                proof = proofs[operation.pk]
                if isinstance(proof, ActivationRefused):
                    raise proof
                device = devices[proof.identity_id]
                _check_may_activate(device, now, activated_in_batch=device in new_keys)
            except ActivationRefused as refusal:
                operation.status = ActivationOperation.Status.FAILED
                operation.error_code = refusal.code
                operation.error_message = refusal.message[:300]
                operation.refusal_reason = refusal.reason
            else:
                new_keys[device] = hash_device_key(derive_device_key(proof.secret, operation.pk, device.code))
                issued_from[device] = operation.client_address
                operation.device = device
                operation.status = ActivationOperation.Status.ASSIGNED
                operation.server_public_key = b64url_encode(public_bytes(proof.server_private_key))
            operation.finished_at = now
        record_activations(new_keys, issued_from=issued_from, at=now, locked=True)
        save_finished(operations)
    return operations


@dataclass(frozen=True)
class _Proof:
    """An operation that proved its unit (every check before its device's), and what activating it needs."""

    device_model: DeviceModel
    identity_id: int
    server_private_key: X25519PrivateKey
    secret: bytes


def _check_proofs(operations, now) -> dict:
    """Each operation's _Proof, or the ActivationRefused it fails with, by operation id.

    Looks the units of all the operations up together (approved_identities), and checks the
    attestations of all those that need one together (attestation_refusals).
    """
    proofs, named = {}, []
    for operation in operations:
        try:
            device_model = _device_model(operation.vendor_slug, operation.model_slug)
            if device_model is None:
                raise ActivationRefused(
                    Error.UNKNOWN_MODEL,
                    f"There is no model {operation.model_slug!r} of vendor {operation.vendor_slug!r}.",
                )
            # Before the unit is looked at, so that this answer says nothing about the unit.
            exchange = _key_exchange(operation)
            named.append(
                (operation, device_model, exchange, _normalized_identifiers(device_model, operation.identifiers))
            )
        except ActivationRefused as refusal:
            proofs[operation.pk] = refusal
    identities = approved_identities([(device_model, columns) for _, device_model, _, columns in named])
    attested = []
    for (operation, device_model, exchange, columns), identity in zip(named, identities, strict=True):
        try:
            identity_id = _check_unit(operation, device_model, identity)
            proofs[operation.pk] = _Proof(device_model, identity_id, *exchange)
            if device_model.attestation == Attestation.FACTORY_SIGNATURE:
                fields = device_model.claiming_method.ordered_fields()
                identifiers = {field.key: columns[field.column] for field in fields}
                attested.append(
                    AttestedUnit(operation, device_model.pk, device_model.vendor.slug, device_model.slug, identifiers)
                )
        except ActivationRefused as refusal:
            proofs[operation.pk] = refusal
    for operation_id, reason in attestation_refusals(attested, now).items():
        proofs[operation_id] = proof_failed(reason)
    return proofs


def _key_exchange(operation):
    """The server's X25519 private key for the operation and the secret it shares with the device's key."""
    server_private_key = X25519PrivateKey.generate()
    try:
        secret = shared_secret(server_private_key, b64url_decode(operation.device_public_key))
    except (InvalidPublicKey, ValueError) as exc:
        raise ActivationRefused(Error.INVALID_PUBLIC_KEY, "The public key is not a usable X25519 public key.") from exc
    return server_private_key, secret


def _normalized_identifiers(device_model, identifiers):
    """The identifiers as the approved list stores them ({column: value}), if they are the model's."""
    expected = {field.key for field in device_model.claiming_method.ordered_fields()}
    if set(identifiers) != expected:
        raise proof_failed(Reason.WRONG_IDENTIFIER_FIELDS)
    try:
        return normalize_identifiers(device_model, identifiers)
    except InvalidIdentifier as exc:
        raise proof_failed(Reason.INVALID_IDENTIFIER) from exc


def _check_unit(operation, device_model, identity) -> int:
    """The checks of one operation whose unit was looked up: approved, not revoked, its claim code
    if the model requires one. Returns the identity's id."""
    if identity is None:
        raise proof_failed(Reason.NOT_ON_LIST)
    identity_id, identity_status, claim_code_hash = identity
    if identity_status == ApprovedIdentity.Status.REVOKED:
        raise proof_failed(Reason.REVOKED)
    if device_model.claiming_method.requires_claim_code:
        reason = claim_code_refusal(operation, claim_code_hash)
        if reason:
            raise proof_failed(reason)
    return identity_id


def _check_may_activate(device, now, *, activated_in_batch):
    """The check on the locked device row: a unit activates once, again only in an open re-activation window."""
    window_open = device.reactivation_allowed_until is not None and device.reactivation_allowed_until > now
    if activated_in_batch or (device.activated_at is not None and not window_open):
        raise ActivationRefused(
            Error.ALREADY_ACTIVATED,
            "This unit has activated already. After a factory reset its owner (or, unclaimed, the vendor) "
            "must allow re-activation.",
        )


def _device_model(vendor_slug, model_slug):
    """The model with its vendor and identifier fields, remembered by this process for a few seconds.

    Every activation of a burst asks for the same few models; an admin change (attestation,
    identifier fields) applies within MODEL_CACHE_SECONDS.
    """
    key = (vendor_slug, model_slug)
    cached = _model_cache.get(key)
    if cached is not None and cached[0] > time.monotonic():
        return cached[1]
    device_model = (
        DeviceModel.objects.select_related("vendor", "claiming_method")
        .prefetch_related("claiming_method__fields")
        .filter(vendor__slug=vendor_slug, slug=model_slug)
        .first()
    )
    _model_cache[key] = (time.monotonic() + MODEL_CACHE_SECONDS, device_model)
    return device_model


@receiver([post_save, post_delete], sender=DeviceModel)
@receiver([post_save, post_delete], sender=Vendor)
@receiver([post_save, post_delete], sender=ClaimingMethod)
@receiver([post_save, post_delete], sender=IdentifierField)
def _forget_models(**kwargs):
    """A model definition changed in this process: do not wait for the cache to expire."""
    _model_cache.clear()
