"""Factory attestation: proof that a unit asking to activate holds a key the factory gave it.

At the factory each unit gets an Ed25519 key pair of its own, and the batch key signs a
certificate over the unit's identifiers and unit public key (certificate_message). To activate,
the unit signs the request itself with its unit key (request_message), at a time it states
(signed_at). The activation task verifies both with the batch's public key and the certified unit
key: the server holds no secret for this. Keys and signatures travel as base64url without
padding, like every binary value of the device API. docs/device-api.md gives a worked example.
"""

import base64
import binascii
import json
import re
from datetime import UTC, datetime, timedelta

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from django.core.exceptions import ValidationError


def b64url_encode(raw: bytes) -> str:
    """base64url without padding."""
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Decode base64url written without padding; ValueError for anything else (padding, other alphabets)."""
    if not isinstance(text, str) or "=" in text or len(text) % 4 == 1:
        raise ValueError("not base64url without padding")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ValueError("not base64url without padding") from exc


BASE64URL = re.compile(r"[A-Za-z0-9_-]+")
SIGNED_AT = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?Z", re.ASCII)
# How far a request's signed_at may be from the server's clock when the request arrives.
SIGNED_AT_TOLERANCE = timedelta(minutes=5)
ED25519_SIGNATURE_BYTES = 64
ED25519_KEY_BYTES = 32
# A production batch's name, as units send it in attestation.batch.
MAX_BATCH_NAME = 64
# The fields of an activation request's "attestation" object.
ATTESTATION_FIELDS = frozenset({"batch", "unit_public_key", "certificate", "signed_at", "signature"})


def is_b64url(text: str) -> bool:
    return isinstance(text, str) and BASE64URL.fullmatch(text) is not None


def validate_ed25519_public_key(value):
    """Model-field validator: 32 bytes of an Ed25519 public key, base64url without padding."""
    try:
        raw = b64url_decode(value) if is_b64url(value) else b""
        Ed25519PublicKey.from_public_bytes(raw)
    except ValueError as exc:
        raise ValidationError("Enter an Ed25519 public key: 32 bytes, base64url without padding.") from exc


def canonical_json(value) -> bytes:
    """The bytes both sides sign: `json.dumps(value, sort_keys=True, separators=(",", ":"))` (Python's
    default ensure_ascii, so any character beyond ASCII is written as a \\uXXXX escape), UTF-8."""
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def certificate_message(vendor_slug: str, model_slug: str, batch_name: str, identifiers: dict, unit_public_key: str):
    """What the batch key signs at the factory: the unit's normalized identifiers ({field key: value})
    and its unit public key (base64url), as canonical_json of
    {"batch", "identifiers", "model", "unit_public_key", "vendor"}."""
    return canonical_json(
        {
            "batch": batch_name,
            "identifiers": identifiers,
            "model": model_slug,
            "unit_public_key": unit_public_key,
            "vendor": vendor_slug,
        }
    )


def request_message(vendor: str, model: str, identifiers: dict, public_key: str, signed_at: str) -> bytes:
    """What the unit key signs for each activation request: canonical_json of
    {"identifiers", "model", "public_key", "signed_at", "vendor"}, every value exactly as the request
    sends it (identifiers as typed, not normalized), so a captured signature fits no other public key."""
    return canonical_json(
        {"identifiers": identifiers, "model": model, "public_key": public_key, "signed_at": signed_at, "vendor": vendor}
    )


def parse_signed_at(text) -> datetime | None:
    """The moment an RFC 3339 UTC timestamp ("2026-12-01T12:00:00Z", optionally with up to six
    decimals of a second) names, or None for anything else (another offset, no "Z", no such day)."""
    if not isinstance(text, str) or not SIGNED_AT.fullmatch(text):
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def format_signed_at(moment: datetime) -> str:
    """The firmware's side: `moment` as signed_at, to the second."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def signature_is_valid(public_key: str, message: bytes, signature: str) -> bool:
    """Whether `signature` (base64url) is the Ed25519 signature of `message` by `public_key` (base64url)."""
    try:
        key = Ed25519PublicKey.from_public_bytes(b64url_decode(public_key))
        key.verify(b64url_decode(signature), message)
    except (ValueError, InvalidSignature):
        return False
    return True


def sign(private_key: Ed25519PrivateKey, message: bytes) -> str:
    """The factory's and the firmware's side (demo data, simulator, tests): the base64url signature of `message`."""
    return b64url_encode(private_key.sign(message))


def public_key_text(private_key: Ed25519PrivateKey) -> str:
    return b64url_encode(private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))
