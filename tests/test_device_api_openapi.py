"""The device API against its OpenAPI description (devices/openapi.py), black-box over WSGI.

schemathesis generates requests from the served description: its examples, the boundary cases of
its limits (at each one and one past it) and random fuzzing, valid and invalid. Every answer is
checked: no 5xx, a documented status, content type, headers and body, valid requests accepted,
invalid ones refused, and the device key really required. The requests reach past the 401 and the
unknown model: they carry the key of a really activated device, and the ids and slugs they name
are mapped onto real commands, activation operations, vendors, models and units (the `fleet`).
"""

import json
import uuid
import zlib

import jsonschema_rs
import pytest
import schemathesis
from django.core.cache import cache
from django.core.wsgi import get_wsgi_application
from hypothesis import HealthCheck, settings

from devices.openapi import OPENAPI
from devices.simulator import SimulatedDevice

from .factories import ApprovedIdentityFactory

# The served description holds the customer API too (tests/test_customer_api_openapi.py).
schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", get_wsgi_application()).exclude(
    path_regex="^/api/v1/org/"
)


def _validator(name):
    """A validator for the description's schema at #/components/schemas/`name`."""
    return jsonschema_rs.validator_for({"$ref": f"#/components/schemas/{name}", "components": OPENAPI["components"]})


# The fields of an activation request that a real unit replaces.
UNIT_FIELDS = {
    name: _validator(f"ActivationRequest/properties/{name}")
    for name in ("vendor", "model", "identifiers", "attestation")
}


def aim(case, fleet):
    """Map the ids and slugs `case` names onto the fleet's real ones, replacing only values that are
    valid where they stand, so that a valid request stays valid and an invalid one invalid. Which
    real object a value stands for (or whether it is kept) is decided by the value itself: the run
    stays deterministic and a failing example replays."""
    for name, real in (("command_id", fleet.command_ids), ("operation_id", fleet.operation_ids)):
        value = case.path_parameters.get(name)
        if _is_uuid(value):
            case.path_parameters[name] = _stand_in(value, real)
    body = case.body
    if case.operation.path == "/api/v1/activations" and isinstance(body, dict) and _unit_fields_are_valid(body):
        unit = _stand_in(json.dumps(body, sort_keys=True), fleet.units)
        if isinstance(unit, dict):
            body.update(unit)


def _stand_in(value, real):
    """One of `real`, or `value` itself, chosen by `value`'s checksum."""
    options = [*real, value]
    return options[zlib.crc32(str(value).encode()) % len(options)]


def _is_uuid(value):
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True


def _unit_fields_are_valid(activation_request):
    """Every field a unit would replace is valid (an absent attestation is: it is optional)."""
    return all(
        validator.is_valid(activation_request[name]) if name in activation_request else name == "attestation"
        for name, validator in UNIT_FIELDS.items()
    )


@schema.parametrize()
@settings(max_examples=50, derandomize=True, deadline=None, suppress_health_check=list(HealthCheck))
def test_fuzzing_the_device_api_with_a_real_device_meets_its_description(case, fleet):
    aim(case, fleet)
    case.call_and_validate(headers=fleet.authorization)


@pytest.mark.django_db(transaction=True)
def test_real_responses_of_a_whole_activation_validate_against_the_description(client):
    cache.clear()
    identity = ApprovedIdentityFactory()
    device = SimulatedDevice(
        {
            "vendor": identity.device_model.vendor.slug,
            "model": identity.device_model.slug,
            "identifiers": identity.identifiers,
        }
    )
    request = device.activation_request()
    _validator("ActivationRequest").validate(request)
    finished = client.post("/api/v1/activations?wait=5", json.dumps(request), content_type="application/json")
    assert finished.status_code == 200
    _validator("Operation").validate(finished.json())
    failed = client.post("/api/v1/activations?wait=5", json.dumps(request), content_type="application/json")
    _validator("Operation").validate(failed.json())
    assert failed.json()["error"]["code"] == "already_activated"
    malformed = client.post("/api/v1/activations", b"{}", content_type="application/json")
    _validator("Error").validate(malformed.json())
    missing = client.get("/api/v1/activations/0b7c6f52-9b8a-4d7e-8f51-1f0c4e5e2a11")
    _validator("Error").validate(missing.json())


def test_the_served_description_holds_the_one_in_the_code(client):
    served = client.get("/api/v1/openapi.json").json()
    assert {path: served["paths"][path] for path in OPENAPI["paths"]} == OPENAPI["paths"]
    assert served["components"]["schemas"].items() >= OPENAPI["components"]["schemas"].items()
