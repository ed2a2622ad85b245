"""docs/device-api.md states the attestation messages byte for byte: its worked example is
recomputed here from the demo seeds, value by value, and the request it shows really activates."""

import hashlib
import io
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from django.core.management import call_command

from accounts.management.commands.seed_demo import (
    DEMO_BATCH_NAME,
    demo_batch_private_key,
    demo_identifiers,
    demo_unit_private_key,
)
from devices.activation import process_activations
from devices.keys import public_bytes
from devices.models import ActivationOperation
from vendors.attestation import b64url_encode, certificate_message, public_key_text, request_message, sign

DOC = (Path(__file__).resolve().parent.parent / "docs" / "device-api.md").read_text()
SIGNED_AT = "2026-12-01T12:00:00Z"


def worked_example():
    """Every value of the doc's worked example, computed as the factory and the firmware would."""
    identifiers = demo_identifiers("display-55", 1)
    normalized = {"cloud_id": identifiers["cloud_id"].replace("-", "")}
    unit_key = demo_unit_private_key("globex", "display-55", 1)
    unit_public_key = public_key_text(unit_key)
    certified = certificate_message("globex", "display-55", DEMO_BATCH_NAME, normalized, unit_public_key)
    device_key = X25519PrivateKey.from_private_bytes(hashlib.sha256(b"device-portal docs example device key").digest())
    public_key = b64url_encode(public_bytes(device_key))
    signed = request_message("globex", "display-55", identifiers, public_key, SIGNED_AT)
    return {
        "batch public key": public_key_text(demo_batch_private_key("globex", "display-55")),
        "identifiers": json.dumps(identifiers),
        "normalized": normalized["cloud_id"],
        "unit private key": b64url_encode(unit_key.private_bytes_raw()),
        "unit public key": unit_public_key,
        "certificate message": certified.decode(),
        "certificate": sign(demo_batch_private_key("globex", "display-55"), certified),
        "device public key": public_key,
        "request message": signed.decode(),
        "signature": sign(unit_key, signed),
    }


def shown_request():
    """The worked example's request as the doc shows it (the last Globex request of the doc)."""
    return re.findall(r'```json\n(\{\n  "vendor": "globex",.*?\n\})\n```', DOC, re.DOTALL)[-1]


@pytest.mark.parametrize("name", list(worked_example()))
def test_the_worked_example_states_each_value_as_computed(name):
    assert worked_example()[name] in DOC


def test_the_worked_example_request_is_the_one_the_doc_shows():
    example = worked_example()
    request = json.loads(shown_request())
    assert request["attestation"]["signature"] == example["signature"]
    assert request["attestation"]["certificate"] == example["certificate"]
    assert request["public_key"] == example["device public key"]
    message = request_message(
        request["vendor"], request["model"], request["identifiers"], request["public_key"], SIGNED_AT
    )
    assert message.decode() == example["request message"]


@pytest.mark.django_db
def test_the_worked_example_activates_had_it_arrived_a_minute_after_it_was_signed(client):
    call_command("seed_demo", stdout=io.StringIO())
    accepted = client.post("/api/v1/activations", shown_request(), content_type="application/json")
    assert accepted.status_code == 202
    arrived = datetime(2026, 12, 1, 12, 1, tzinfo=UTC)
    ActivationOperation.objects.update(created_at=arrived)
    (operation,) = process_activations(now=arrived + timedelta(seconds=1))
    assert (operation.status, operation.refusal_reason) == ("assigned", "")
