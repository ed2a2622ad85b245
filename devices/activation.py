"""Activating a device: the rule that decides whether a unit may exchange a key with the server.

`process_activations` is the one function that applies it, to a batch of waiting operations at a
time; the queue that feeds it (activation_queue.py), its plain statements (activation_sql.py) and
the device's later authentication (authentication.py) live apart.
"""

import time
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from django.utils import timezone

from portal.errors import UserFacingError
from vendors.attestation import attestation_message, b64url_decode, b64url_encode, signature_is_valid
from vendors.identifiers import Normalization, normalize
from vendors.models import (
    ApprovedIdentity,
    Attestation,
    ClaimingMethod,
    DeviceModel,
    IdentifierField,
    ProductionBatch,
    Vendor,
)

from .actions import record_activations
from .activation_sql import approved_identities, lock_waiting, save_finished
from .claims import InvalidIdentifier, normalize_identifiers
from .keys import InvalidPublicKey, derive_device_key, hash_device_key, public_bytes, shared_secret
from .models import ActivationOperation, Device

MODEL_CACHE_SECONDS = 10
_model_cache = {}

Error = ActivationOperation.Error


class ActivationRefused(UserFacingError):
    """The operation fails with `code` (one of ActivationOperation.Error) and a message for the device's maker."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class ActivationRequest:
    """A well-formed activation request (the API checked its shape; the rule checks its meaning)."""

    vendor: str
    model: str
    identifiers: dict
    public_key: str
    attestation: dict | None = None

    def identity_key(self):
        """The unit the request is about, for the per-identity rate limit; separators and case do not matter."""
        values = "/".join(
            f"{key}={normalize(value, Normalization.COMPACT).replace(':', '')}"
            for key, value in sorted(self.identifiers.items())
        )
        return f"{self.vendor.lower()}/{self.model.lower()}/{values}"


def process_activations(operation_ids=None, *, exclude=(), limit: int | None = None) -> list[ActivationOperation]:
    """Process activation operations that are still assigning, all in one transaction: those of
    `operation_ids`, or else (up to `limit` of) those waiting longest. Returns them, finished.

    For each, checks in order: the vendor's model exists (unknown_model), the identifiers are on its
    approved list (not_approved) and not withdrawn (revoked), the factory signature when the model
    requires one (attestation_failed), the device's public key (invalid_public_key), and that the unit
    has not activated already unless its re-activation window is open (already_activated; of two
    operations for one unit in a batch, the first wins). Then derives the device key and stores only
    its hash (record_activations) and the server's public key.

    The batch runs a fixed handful of statements whatever its size: one to look its units up, one
    to create-or-lock their devices, and pipelined writes. Idempotent: each operation row is locked,
    rows another worker holds are skipped, and only an operation still assigning is processed, so
    running twice, or being killed and re-run, leaves one key and one event.
    """
    with transaction.atomic():
        operations = lock_waiting(operation_ids, exclude, limit)
        now = timezone.now()
        proofs = _check_proofs(operations)
        passed = [proof for proof in proofs.values() if isinstance(proof, _Proof)]
        devices = Device.objects.create_or_lock({proof.identity_id: proof.device_model.pk for proof in passed})
        new_keys = {}
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
            else:
                new_keys[device] = hash_device_key(derive_device_key(proof.secret, operation.pk, device.code))
                operation.device = device
                operation.status = ActivationOperation.Status.ASSIGNED
                operation.server_public_key = b64url_encode(public_bytes(proof.server_private_key))
            operation.finished_at = now
        record_activations(new_keys, at=now, locked=True)
        save_finished(operations)
    return operations


@dataclass(frozen=True)
class _Proof:
    """An operation that proved its unit (every check before its device's), and what activating it needs."""

    device_model: DeviceModel
    identity_id: int
    server_private_key: X25519PrivateKey
    secret: bytes


def _check_proofs(operations) -> dict:
    """Each operation's _Proof, or the ActivationRefused it fails with, by operation id.

    Looks the units of all the operations up together (approved_identities).
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
            named.append((operation, device_model, _normalized_identifiers(device_model, operation.identifiers)))
        except ActivationRefused as refusal:
            proofs[operation.pk] = refusal
    identities = approved_identities([(device_model, columns) for _, device_model, columns in named])
    for (operation, device_model, columns), identity in zip(named, identities, strict=True):
        try:
            proofs[operation.pk] = _check_unit(operation, device_model, columns, identity)
        except ActivationRefused as refusal:
            proofs[operation.pk] = refusal
    return proofs


def _not_approved(device_model):
    return f"This unit is not on {device_model.vendor.name}'s approved list for {device_model.name}."


def _normalized_identifiers(device_model, identifiers):
    """The identifiers as the approved list stores them ({column: value}), if they are the model's."""
    expected = {field.key for field in device_model.claiming_method.ordered_fields()}
    if set(identifiers) != expected:
        raise ActivationRefused(
            Error.NOT_APPROVED,
            f"{device_model.name} is identified by {', '.join(sorted(expected))}. {_not_approved(device_model)}",
        )
    try:
        return normalize_identifiers(device_model, identifiers)
    except InvalidIdentifier as exc:
        raise ActivationRefused(Error.NOT_APPROVED, f"{exc.message} {_not_approved(device_model)}") from exc


def _check_unit(operation, device_model, columns, identity) -> _Proof:
    """The checks of one operation whose unit was looked up: approved, not revoked, attested, a usable key."""
    if identity is None:
        raise ActivationRefused(Error.NOT_APPROVED, _not_approved(device_model))
    identity_id, identity_status = identity
    if identity_status == ApprovedIdentity.Status.REVOKED:
        raise ActivationRefused(Error.REVOKED, f"{device_model.vendor.name} has withdrawn this unit.")
    if device_model.attestation == Attestation.FACTORY_SIGNATURE:
        _check_attestation(device_model, columns, operation.attestation)
    server_private_key = X25519PrivateKey.generate()
    try:
        secret = shared_secret(server_private_key, b64url_decode(operation.device_public_key))
    except (InvalidPublicKey, ValueError) as exc:
        raise ActivationRefused(Error.INVALID_PUBLIC_KEY, "The public key is not a usable X25519 public key.") from exc
    return _Proof(device_model, identity_id, server_private_key, secret)


def _check_attestation(device_model, columns, attestation):
    failed = ActivationRefused(
        Error.ATTESTATION_FAILED,
        f"{device_model.name} must present a valid factory signature from a production batch that is not revoked.",
    )
    if not attestation:
        raise failed
    batch = ProductionBatch.objects.filter(device_model=device_model, name=attestation["batch"]).first()
    if batch is None or batch.is_revoked:
        raise failed
    values = [columns[field.column] for field in device_model.claiming_method.ordered_fields()]
    message = attestation_message(device_model.vendor.slug, device_model.slug, values)
    if not signature_is_valid(batch.public_key, message, attestation["signature"]):
        raise failed


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
