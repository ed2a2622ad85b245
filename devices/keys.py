"""The device key of the activation protocol, computed alike by the server (the activation task)
and by a device (the simulator, the tests): X25519, then HKDF-SHA256.

    device_key = HKDF-SHA256(ikm = X25519 shared secret, salt = the operation UUID's 16 bytes,
                             info = b"device-key:" + the device UUID in canonical text, length = 32)

The server keeps only SHA-256(device_key) and never its own private key.
"""

import hashlib
import hmac
import uuid

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

KEY_LENGTH = 32


class InvalidPublicKey(ValueError):
    """The device's X25519 public key gives no usable shared secret (a low-order point)."""


def public_bytes(private_key: X25519PrivateKey) -> bytes:
    return private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def shared_secret(private_key: X25519PrivateKey, peer_public_key: bytes) -> bytes:
    """X25519 with the peer's raw 32-byte public key; InvalidPublicKey if it yields the all-zero secret."""
    try:
        return private_key.exchange(X25519PublicKey.from_public_bytes(peer_public_key))
    except ValueError as exc:
        raise InvalidPublicKey(str(exc)) from exc


def derive_device_key(secret: bytes, operation_id: uuid.UUID, device_code: uuid.UUID) -> bytes:
    """The 32-byte device key both sides derive from the shared secret (see the module docstring)."""
    return HKDF(
        algorithm=hashes.SHA256(),
        length=KEY_LENGTH,
        salt=operation_id.bytes,
        info=b"device-key:" + str(device_code).encode("ascii"),
    ).derive(secret)


def hash_device_key(device_key: bytes) -> str:
    """What the server stores and looks devices up by: hex SHA-256 of the key."""
    return hashlib.sha256(device_key).hexdigest()


def key_matches(device_key: bytes, stored_hash: str) -> bool:
    """Constant-time check of a presented key against a stored hash."""
    return bool(stored_hash) and hmac.compare_digest(hash_device_key(device_key), stored_hash)
