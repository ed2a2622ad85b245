"""Factory attestation: proof that a unit asking to activate is one the factory made.

At the factory each unit gets `Ed25519-sign(batch private key, attestation_message(...))`; the
activation task verifies it with the batch's public key. The server holds no secret for this.
Keys and signatures travel as base64url without padding, like every binary value of the device API.
"""

import base64
import binascii
import re

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


def is_b64url(text: str) -> bool:
    return isinstance(text, str) and BASE64URL.fullmatch(text) is not None


def validate_ed25519_public_key(value):
    """Model-field validator: 32 bytes of an Ed25519 public key, base64url without padding."""
    try:
        raw = b64url_decode(value) if is_b64url(value) else b""
        Ed25519PublicKey.from_public_bytes(raw)
    except ValueError as exc:
        raise ValidationError("Enter an Ed25519 public key: 32 bytes, base64url without padding.") from exc


def attestation_message(vendor_slug: str, model_slug: str, normalized_values) -> bytes:
    """What the factory signs: "<vendor slug>/<model slug>/" + the unit's normalized identifier values
    in the model's field order, joined by "/", UTF-8."""
    return f"{vendor_slug}/{model_slug}/{'/'.join(normalized_values)}".encode()


def signature_is_valid(public_key: str, message: bytes, signature: str) -> bool:
    """Whether `signature` (base64url) is the Ed25519 signature of `message` by `public_key` (base64url)."""
    try:
        key = Ed25519PublicKey.from_public_bytes(b64url_decode(public_key))
        key.verify(b64url_decode(signature), message)
    except (ValueError, InvalidSignature):
        return False
    return True


def sign(private_key: Ed25519PrivateKey, message: bytes) -> str:
    """The factory's side (demo data, simulator, tests): the base64url signature of `message`."""
    return b64url_encode(private_key.sign(message))


def public_key_text(private_key: Ed25519PrivateKey) -> str:
    return b64url_encode(private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))
