"""The link a unit's QR label holds: one payload with vendor, model, identifiers and claim code.

    https://portal.example/claim/label/<payload>/
    payload = base64url, without padding, of the UTF-8 JSON
              {"c": "<claim code>", "i": {"<field key>": "<value>", ...}, "m": "<model slug>", "v": "<vendor slug>"}
              (keys sorted, no spaces; "c" is left out for a model without claim codes)

The payload travels in the path, not in a #fragment: a phone's camera app opens the link and the
portal, which renders its pages on the server, reads it. It is not signed: it proves nothing by
itself, the claim checks the code as if it had been typed. Built and read only here.
"""

import json
from urllib.parse import urljoin

from .attestation import b64url_decode, b64url_encode
from .identifiers import MAX_IDENTIFIER_FIELDS, MAX_IDENTIFIER_LENGTH

LABEL_PATH = "/claim/label/{payload}/"
MAX_PAYLOAD_LENGTH = 600


class LabelPayloadError(ValueError):
    """A payload that is not one this portal writes (cut short, altered, or not a label at all)."""


def label_payload(vendor_slug: str, model_slug: str, identifiers: dict, claim_code: str | None = None) -> str:
    """The payload of a unit's label; `identifiers` as printed (field key -> value)."""
    content = {"v": vendor_slug, "m": model_slug, "i": dict(identifiers)}
    if claim_code:
        content["c"] = claim_code
    return b64url_encode(json.dumps(content, sort_keys=True, separators=(",", ":")).encode())


def label_url(origin: str, vendor_slug: str, model_slug: str, identifiers: dict, claim_code: str | None = None) -> str:
    """The full link printed as the label's QR code; `origin` is the portal's, e.g. "https://portal.example"."""
    return urljoin(origin, LABEL_PATH.format(payload=label_payload(vendor_slug, model_slug, identifiers, claim_code)))


def parse_label_payload(payload: str) -> dict:
    """{"vendor", "model", "identifiers", "claim_code"} read from a label's payload (claim_code may
    be None). Raises LabelPayloadError for anything this portal would not have written."""
    if not isinstance(payload, str) or not 0 < len(payload) <= MAX_PAYLOAD_LENGTH:
        raise LabelPayloadError("not a label payload")
    try:
        content = json.loads(b64url_decode(payload).decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise LabelPayloadError("not a label payload") from exc
    if not isinstance(content, dict) or set(content) - {"v", "m", "i", "c"}:
        raise LabelPayloadError("not a label payload")
    vendor, model, identifiers, code = content.get("v"), content.get("m"), content.get("i"), content.get("c")
    if not (_short_text(vendor, 50) and _short_text(model, 50)):
        raise LabelPayloadError("not a label payload")
    if not isinstance(identifiers, dict) or not 0 < len(identifiers) <= MAX_IDENTIFIER_FIELDS:
        raise LabelPayloadError("not a label payload")
    if not all(_short_text(k, 32) and _short_text(v, MAX_IDENTIFIER_LENGTH) for k, v in identifiers.items()):
        raise LabelPayloadError("not a label payload")
    if code is not None and not _short_text(code, 32):
        raise LabelPayloadError("not a label payload")
    return {"vendor": vendor, "model": model, "identifiers": identifiers, "claim_code": code}


def _short_text(value, max_length):
    return isinstance(value, str) and 0 < len(value) <= max_length and value.isprintable()
