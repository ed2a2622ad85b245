"""The OpenAPI description of the device API matches what the API does: schemathesis fuzzes every
operation from the served description (no 5xx, responses conform), and real responses validate."""

import json

import jsonschema_rs
import pytest
import schemathesis
from django.core.cache import cache
from django.core.wsgi import get_wsgi_application
from hypothesis import HealthCheck, settings

from devices.openapi import OPENAPI
from devices.simulator import SimulatedDevice

from .factories import ApprovedIdentityFactory

schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", get_wsgi_application())


@pytest.fixture
def generous_rate_limits(settings):
    """The fuzzer sends hundreds of requests a minute from one address; limits are tested elsewhere."""
    settings.ACTIVATION_RATE_PER_ADDRESS = 10**6
    settings.ACTIVATION_RATE_PER_IDENTITY = 10**6
    cache.clear()


@schema.parametrize()
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@pytest.mark.django_db(transaction=True)
def test_fuzzing_the_device_api_from_its_openapi_description_gives_no_5xx(case, generous_rate_limits):
    case.call_and_validate()


def _validator(name):
    return jsonschema_rs.validator_for({"$ref": f"#/components/schemas/{name}", "components": OPENAPI["components"]})


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


def test_the_served_description_is_the_one_in_the_code(client):
    assert client.get("/api/v1/openapi.json").json() == OPENAPI
