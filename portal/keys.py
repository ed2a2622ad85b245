"""Keys derived from the project's secrets, one per purpose: no purpose uses a secret itself, and
no two purposes share a key."""

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings


def derived_key(purpose: bytes, *, secret: str | None = None, salt: bytes | None = None) -> bytes:
    """A 32-byte key for `purpose` (HKDF-SHA256's info), from `secret` (default SECRET_KEY) and an
    optional `salt` (e.g. one per encrypted file)."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=purpose).derive(
        (secret if secret is not None else settings.SECRET_KEY).encode()
    )
