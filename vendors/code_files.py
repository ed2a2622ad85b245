"""Files of plaintext claim codes waiting to be downloaded, encrypted at rest.

Generated codes have to reach the vendor once, but must not sit in the database in clear (a dump
or a backup would hold them all). They wait in a file under MEDIA_ROOT/claim-codes/, which the web
process and the workers share as they share uploads:

    file   = magic "DPCC1" | salt (16 bytes) | chunk ...
    chunk  = length of the ciphertext (4 bytes, big-endian) | AES-256-GCM ciphertext
    key    = HKDF-SHA256(SECRET_KEY, salt, "device-portal claim-code file")  (portal/keys.py)
    nonce  = chunk number (11 bytes, big-endian) | 1 for the last chunk, else 0

A chunk holds up to CHUNK_BYTES of CSV text, so a million codes are written and read in constant
memory; the last-chunk flag in the nonce makes a truncated file fail to decrypt rather than read
as a shorter one, and the header is authenticated with every chunk.

The records are CSV rows: the line (a sequence number), the unit's identifier values in slot
order, then the claim code. Written and read only here.
"""

import csv
import io
import os
import secrets
import struct
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings

from portal.keys import derived_key

MAGIC = b"DPCC1"
SALT_BYTES = 16
CHUNK_BYTES = 1 << 16
# Records handed to the CSV writer at a time (one call per row would cost as much as the encryption).
PENDING_RECORDS = 1000
_LENGTH = struct.Struct(">I")


class CodeFileError(Exception):
    """The file is missing, cut short or was not written with this portal's key."""


def code_file_path(name: str) -> Path:
    return Path(settings.MEDIA_ROOT) / "claim-codes" / f"{name}.enc"


def _cipher(salt: bytes) -> AESGCM:
    return AESGCM(derived_key(b"device-portal claim-code file", salt=salt))


def _nonce(number: int, last: bool) -> bytes:
    return number.to_bytes(11, "big") + (b"\x01" if last else b"\x00")


class CodeFileWriter:
    """Writes records to `path` encrypted, through a temporary file that replaces `path` only on
    `close()`, so a reader never sees half a file; `discard()` drops it instead."""

    def __init__(self, path: Path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._temporary = path.with_name(f"{path.name}.{secrets.token_hex(4)}.part")
        self._out = open(self._temporary, "wb")  # noqa: SIM115 (closed by close() or discard())
        salt = secrets.token_bytes(SALT_BYTES)
        self._header = MAGIC + salt
        self._out.write(self._header)
        self._cipher = _cipher(salt)
        self._chunks = 0
        self._buffer = io.StringIO()
        self._csv = csv.writer(self._buffer, lineterminator="\n")
        self._pending = []
        self.records = 0

    def write(self, line: int, values, code: str):
        self._pending.append((line, *values, code))
        if len(self._pending) == PENDING_RECORDS:
            self._csv.writerows(self._pending)
            self._pending.clear()
            self.records += PENDING_RECORDS
            if self._buffer.tell() >= CHUNK_BYTES:
                self._flush(last=False)

    def _flush(self, *, last):
        if last:
            self._csv.writerows(self._pending)
            self.records += len(self._pending)
            self._pending.clear()
        data = self._buffer.getvalue().encode()
        self._buffer.seek(0)
        self._buffer.truncate()
        sealed = self._cipher.encrypt(_nonce(self._chunks, last), data, self._header)
        self._out.write(_LENGTH.pack(len(sealed)) + sealed)
        self._chunks += 1

    def close(self):
        self._flush(last=True)
        self._out.close()
        os.replace(self._temporary, self.path)

    def discard(self):
        self._out.close()
        self._temporary.unlink(missing_ok=True)


def read_code_file(source):
    """The records of an open code file (binary), as (line, [identifier values], code), streamed.
    Raises CodeFileError when the file was altered, cut short or encrypted with another key."""
    for data in _decrypted_chunks(source):
        for record in csv.reader(io.StringIO(data.decode())):
            yield int(record[0]), record[1:-1], record[-1]


def check_code_file(source):
    """Decrypt the whole open code file, then rewind it: raises CodeFileError as `read_code_file`
    would, before a caller commits to reading it (AES-GCM runs at about 1 GB/s: a million codes
    cost tens of milliseconds)."""
    for _data in _decrypted_chunks(source):
        pass
    source.seek(0)


def _decrypted_chunks(source):
    header = source.read(len(MAGIC) + SALT_BYTES)
    if len(header) != len(MAGIC) + SALT_BYTES or not header.startswith(MAGIC):
        raise CodeFileError("not a claim-code file")
    cipher = _cipher(header[len(MAGIC) :])
    number, pending = 0, _read_chunk(source)
    while pending is not None:
        following = _read_chunk(source)
        try:
            data = cipher.decrypt(_nonce(number, following is None), pending, header)
        except InvalidTag as exc:  # altered, cut short or encrypted with another key
            raise CodeFileError("the claim-code file cannot be decrypted") from exc
        yield data
        number, pending = number + 1, following
    if number == 0:
        raise CodeFileError("the claim-code file is empty")


def _read_chunk(source):
    length = source.read(_LENGTH.size)
    if not length:
        return None
    if len(length) != _LENGTH.size:
        raise CodeFileError("the claim-code file is cut short")
    sealed = source.read(_LENGTH.unpack(length)[0])
    if len(sealed) != _LENGTH.unpack(length)[0]:
        raise CodeFileError("the claim-code file is cut short")
    return sealed
