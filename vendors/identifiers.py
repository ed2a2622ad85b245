"""Normalization of the identifiers printed on devices, and the engine their formats run on.

Pure functions: the claim wizard, the activation API and the serial-list import all
normalize with these, so a value typed in any accepted form matches the one stored.
"""

import re

import re2
from django.db import models

MAX_IDENTIFIER_FIELDS = 3
MAX_IDENTIFIER_LENGTH = 64

_HEX12 = re.compile(r"^[0-9A-F]{12}$")

# Characters that are easy to mistake for each other on a printed sticker.
CONFUSABLE_GROUPS = ("O0", "I1L", "S5", "B8", "Z2")


class Normalization(models.TextChoices):
    TEXT = "text", "Text: spaces removed, upper-case"
    MAC = "mac", "MAC address: separators removed, written AA:BB:CC:DD:EE:FF"
    COMPACT = "compact", "Compact: spaces, dashes and dots removed, upper-case"


def normalize(value: str, rule: str) -> str:
    """Return the canonical form of an identifier typed or imported as `value`.

    Every rule removes surrounding and inner whitespace and upper-cases; `mac` also drops
    `:`, `-` and `.` separators and writes twelve hex digits as AA:BB:CC:DD:EE:FF; `compact`
    also drops dashes and dots (IMEI, cloud IDs printed in groups). A value that does not
    fit is returned compacted, for the field's format check to refuse.
    """
    return normalizer(rule)(value or "")


def normalizer(rule: str):
    """The one-argument function `normalize` applies for `rule`, for callers of millions of values."""
    return _NORMALIZERS[rule]


# str methods rather than regular expressions: the import normalizes millions of values.
def _text(value):
    return "".join(value.split()).upper()


def _mac(value):
    compact = "".join(value.split()).upper()
    bare = compact.replace(":", "").replace("-", "").replace(".", "")
    if _HEX12.match(bare):
        return f"{bare[0:2]}:{bare[2:4]}:{bare[4:6]}:{bare[6:8]}:{bare[8:10]}:{bare[10:12]}"
    return compact


def _compact(value):
    return "".join(value.split()).upper().replace("-", "").replace(".", "")


_NORMALIZERS = {Normalization.TEXT: _text, Normalization.MAC: _mac, Normalization.COMPACT: _compact}


class PatternError(ValueError):
    """A format pattern RE2 cannot run: backreferences, lookarounds, repetitions over 1000, ..."""


_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False  # a refused pattern is the vendor's input error, reported to them


def compile_pattern(pattern: str):
    """A vendor's format pattern compiled by RE2, which matches in time linear in the value (it
    never backtracks), so no pattern can make a claim or an activation batch run for ever.
    Raises PatternError for a pattern RE2 cannot run."""
    try:
        return re2.compile(pattern, _RE2_OPTIONS)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else ""
        raise PatternError(reason.decode(errors="replace") if isinstance(reason, bytes) else str(reason)) from exc


def confusable_characters(value: str) -> list[str]:
    """The groups of look-alike characters (O/0, I/1/L, ...) that occur in `value`, written "O/0"."""
    upper = (value or "").upper()
    return ["/".join(group) for group in CONFUSABLE_GROUPS if any(ch in upper for ch in group)]
