"""Claim codes: the per-unit secret that proves a person (or the unit itself) holds the unit.

A claim code is 11 digits, as Matter's manual pairing code: 10 random digits (33 bits) and a
Verhoeff check digit, so that a typo is caught before it counts as a failed claim. People type it
with any spaces or dashes; it is printed in groups of 4-3-4 ("1234-567-8901").

The portal never stores a code: it stores HMAC-SHA256(key, code), the key being derived (HKDF,
portal/keys.py) from `CLAIM_CODE_SECRET`, or from `SECRET_KEY` when that is empty. Ten digits
hashed without a secret key would be reversed by trying them all in seconds.
"""

import array
import functools
import hashlib
import hmac
import secrets
import unicodedata
from dataclasses import dataclass

from django.conf import settings

from portal.keys import derived_key

CLAIM_CODE_LENGTH = 11
RANDOM_DIGITS = CLAIM_CODE_LENGTH - 1

# Verhoeff's dihedral-group tables: multiplication, permutation and inverse.
_D = (
    (0, 1, 2, 3, 4, 5, 6, 7, 8, 9),
    (1, 2, 3, 4, 0, 6, 7, 8, 9, 5),
    (2, 3, 4, 0, 1, 7, 8, 9, 5, 6),
    (3, 4, 0, 1, 2, 8, 9, 5, 6, 7),
    (4, 0, 1, 2, 3, 9, 5, 6, 7, 8),
    (5, 9, 8, 7, 6, 0, 4, 3, 2, 1),
    (6, 5, 9, 8, 7, 1, 0, 4, 3, 2),
    (7, 6, 5, 9, 8, 2, 1, 0, 4, 3),
    (8, 7, 6, 5, 9, 3, 2, 1, 0, 4),
    (9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
)
_P = (
    (0, 1, 2, 3, 4, 5, 6, 7, 8, 9),
    (1, 5, 7, 6, 2, 8, 3, 0, 9, 4),
    (5, 8, 0, 3, 7, 9, 6, 1, 4, 2),
    (8, 9, 1, 6, 0, 4, 3, 5, 2, 7),
    (9, 4, 5, 3, 1, 2, 6, 8, 7, 0),
    (4, 2, 8, 6, 5, 7, 3, 9, 0, 1),
    (2, 7, 9, 3, 8, 0, 6, 4, 1, 5),
    (7, 0, 4, 6, 9, 1, 3, 2, 5, 8),
)
_INV = (0, 4, 3, 2, 1, 5, 6, 7, 8, 9)

_SEPARATORS = str.maketrans("", "", " -\t\n\r\v\f")
# What else people (and their phones' keyboards, and text copied from a PDF) put between digits:
# dashes of every kind, the minus sign, and invisible characters (soft hyphen, zero-width space,
# word joiner, byte-order mark); any Unicode whitespace is a separator too.
_DASH_LIKE = frozenset("\u2212\u00ad\u200b\u2060\ufeff")


class ClaimCodeError(ValueError):
    """A typed claim code that cannot be a claim code; `typo` when it has the right length but its
    check digit fails (the person mistyped one digit or swapped two)."""

    def __init__(self, message, *, typo=False):
        super().__init__(message)
        self.message = message
        self.typo = typo


def verhoeff_check_digit(digits: str) -> str:
    """The Verhoeff check digit to append to `digits` (a string of decimal digits)."""
    check = 0
    for position, digit in enumerate(reversed(digits), start=1):
        check = _D[check][_P[position % 8][int(digit)]]
    return str(_INV[check])


def verhoeff_is_valid(code: str) -> bool:
    """Whether the last digit of `code` is the Verhoeff check digit of the others."""
    check = 0
    for position, digit in enumerate(reversed(code)):
        check = _D[check][_P[position % 8][int(digit)]]
    return check == 0


def normalize_claim_code(raw) -> str:
    """The 11 digits of a claim code typed as `raw` (spaces and dashes of any kind anywhere are ignored).

    Raises ClaimCodeError: `typo=True` for 11 digits whose check digit fails.
    """
    code = _without_separators(raw) if isinstance(raw, str) else ""
    if not code:
        raise ClaimCodeError("Enter the claim code.")
    if len(code) != CLAIM_CODE_LENGTH or not code.isascii() or not code.isdigit():
        raise ClaimCodeError("A claim code is 11 digits, e.g. 1234-567-8901.")
    if not verhoeff_is_valid(code):
        raise ClaimCodeError(
            "This claim code has a typo: one digit is wrong or two are swapped. Check it against the label.",
            typo=True,
        )
    return code


def _without_separators(raw: str) -> str:
    if raw.isascii():  # the serial-list import's million codes take this path
        return raw.translate(_SEPARATORS)
    return "".join(
        character
        for character in raw
        if not (character.isspace() or character in _DASH_LIKE or unicodedata.category(character) == "Pd")
    )


def generate_claim_code() -> str:
    """One new claim code; callers that make many keep a `claim_code_generator()`."""
    return claim_code_generator()()


def format_claim_code(code: str) -> str:
    """The code as printed on labels: 4-3-4 digits joined by dashes."""
    return f"{code[:4]}-{code[4:7]}-{code[7:]}"


def _hmac_key() -> bytes:
    return _derived_hmac_key(settings.CLAIM_CODE_SECRET or settings.SECRET_KEY)


# Kept per secret: a claim or an activation checks a code, and HKDF costs more than the HMAC itself.
@functools.lru_cache(maxsize=4)
def _derived_hmac_key(secret: str) -> bytes:
    # Derived, so that the claim-code key is never the signing key itself.
    return derived_key(b"device-portal claim-code hmac", secret=secret)


def claim_code_hasher():
    """A function from a normalized code to its stored hash (hex HMAC-SHA256), with the key set up
    once, for callers that hash a million codes (the serial-list import)."""
    prepared = hmac.new(_hmac_key(), digestmod=hashlib.sha256)

    def hash_code(code: str) -> str:
        mac = prepared.copy()
        mac.update(code.encode("ascii"))
        return mac.hexdigest()

    return hash_code


def hash_claim_code(code: str) -> str:
    """What the portal stores for the normalized claim code `code`."""
    return claim_code_hasher()(code)


@dataclass(frozen=True)
class HashedClaimCode:
    """A normalized claim code known by its keyed hash alone: what the portal keeps of a code
    between two requests (the wizard's steps, a label link waiting for its space), so that the code
    is never written into the session. Built by the server only (`of`, or from what it kept itself),
    never from what a client sent: to a claim, the hash is as good as the code."""

    digest: str

    @classmethod
    def of(cls, code: str) -> "HashedClaimCode":
        """The hashed form of the normalized code `code`."""
        return cls(hash_claim_code(code))

    def matches(self, stored_hash: str) -> bool:
        """Constant-time check against a stored hash; False when none is stored."""
        return claim_code_hash_matches(self.digest, stored_hash)


def claim_code_matches(code: str, stored_hash: str) -> bool:
    """Constant-time check of a normalized code against a stored hash; False when none is stored."""
    return claim_code_hash_matches(hash_claim_code(code), stored_hash)


def claim_code_hash_matches(code_hash: str, stored_hash: str) -> bool:
    """claim_code_matches for a code kept only as its hash (hash_claim_code), as an activation
    operation keeps it; False when none is stored."""
    return bool(stored_hash) and hmac.compare_digest(code_hash, stored_hash)


def claim_code_generator():
    """A function returning new claim codes, fast enough for a million (the serial-list import): 10
    digits from the operating system's CSPRNG, read 8 KB at a time, then the Verhoeff check digit,
    from tables of Verhoeff's steps over blocks of three digits (built once per process)."""
    blocks = _verhoeff_block_tables()
    limit = (1 << 64) - (1 << 64) % 10**RANDOM_DIGITS  # values >= limit would make low numbers likelier
    pending = []

    def new_code():
        while not pending:
            pending.extend(
                value % 10**RANDOM_DIGITS for value in array.array("Q", secrets.token_bytes(8192)) if value < limit
            )
            pending.reverse()
        digits = pending.pop()
        check = blocks[0][digits % 1000]
        check = blocks[1][check * 1000 + digits // 1000 % 1000]
        check = blocks[2][check * 1000 + digits // 1000_000 % 1000]
        check = blocks[3][check * 10 + digits // 1000_000_000]
        return f"{digits:0{RANDOM_DIGITS}d}{_INV[check]}"

    return new_code


@functools.cache
def _verhoeff_block_tables():
    """For the digit positions 1-3, 4-6, 7-9 and 10 (from the right, before the check digit): the
    Verhoeff state after a block, indexed by state * 10**width + the block's digits."""
    tables = []
    for first, width in ((1, 3), (4, 3), (7, 3), (10, 1)):
        table = bytearray(10 * 10**width)
        for state in range(10):
            for block in range(10**width):
                check, rest = state, block
                for position in range(first, first + width):
                    rest, digit = divmod(rest, 10)
                    check = _D[check][_P[position % 8][digit]]
                table[state * 10**width + block] = check
        tables.append(bytes(table))
    return tables
