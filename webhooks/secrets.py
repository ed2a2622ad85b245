"""Endpoint secrets: generated or typed, shown once, kept encrypted at rest.

The receiver verifies each delivery's HMAC with the secret, so the portal needs the secret itself
(not a hash of it): it is encrypted with AES-GCM under a key derived from WEBHOOK_SECRET_KEY (by
default SECRET_KEY), with the endpoint's code as associated data, so that a ciphertext copied onto
another endpoint does not decrypt.
"""

import os
import re
import secrets as random

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings

from portal.errors import UserFacingError
from portal.keys import derived_key

SECRET_PATTERN = re.compile(r"[A-Za-z0-9._-]{32,128}")
SECRET_RULE = "at least 32 (and at most 128) letters, digits, “-”, “_” and “.”"  # noqa: S105 - the rule's wording
NONCE_BYTES = 12


class InvalidSecret(UserFacingError):
    """A typed secret that breaks SECRET_RULE."""


def generate_secret() -> str:
    """A new secret: `whsec_` and 43 URL-safe characters (256 bits from the CSPRNG)."""
    return "whsec_" + random.token_urlsafe(32)


def checked_secret(secret: str) -> str:
    """`secret` if it follows SECRET_RULE, else InvalidSecret."""
    if not SECRET_PATTERN.fullmatch(secret or ""):
        raise InvalidSecret(f"A secret has {SECRET_RULE}.")
    return secret


def _cipher():
    return AESGCM(derived_key(b"portal webhook secret v1", secret=settings.WEBHOOK_SECRET_KEY or None))


def encrypt_secret(secret: str, endpoint_code) -> bytes:
    nonce = os.urandom(NONCE_BYTES)
    return nonce + _cipher().encrypt(nonce, secret.encode(), endpoint_code.bytes)


def decrypt_secret(encrypted: bytes, endpoint_code) -> str:
    encrypted = bytes(encrypted)
    return _cipher().decrypt(encrypted[:NONCE_BYTES], encrypted[NONCE_BYTES:], endpoint_code.bytes).decode()
