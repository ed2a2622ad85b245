"""Property-based tests (hypothesis) of the device API's request validation: whatever arrives,
the answer is a well-formed request or a 400 naming fields, never an exception or a 500."""

import json
import math
from datetime import UTC, datetime

import pytest
from django.core.cache import cache
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devices.api import InvalidRequest, parse_activation, parse_heartbeat, parse_json_object, parse_wait
from vendors.attestation import b64url_encode

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)
slugs = st.from_regex(r"[a-z0-9][a-z0-9-]{0,20}", fullmatch=True)
identifier_names = st.from_regex(r"[a-z][a-z0-9_]{0,15}", fullmatch=True)
# Lone surrogates cannot be stored in PostgreSQL and are refused (tested below), so codec="utf-8".
identifier_values = st.text(st.characters(exclude_categories=["Cc"], codec="utf-8"), min_size=1, max_size=40)
keys = st.binary(min_size=32, max_size=32).map(b64url_encode)
signatures = st.binary(min_size=64, max_size=64).map(b64url_encode)


@st.composite
def activation_requests(draw):
    body = {
        "vendor": draw(slugs),
        "model": draw(slugs),
        "identifiers": draw(st.dictionaries(identifier_names, identifier_values, min_size=1, max_size=3)),
        "public_key": draw(keys),
    }
    if draw(st.booleans()):
        body["attestation"] = {
            "batch": draw(identifier_values),
            "unit_public_key": draw(keys),
            "certificate": draw(signatures),
            "signed_at": draw(st.datetimes(min_value=datetime(2000, 1, 1), timezones=st.just(UTC))).strftime(
                "%Y-%m-%dT%H:%M:%SZ"
            ),
            "signature": draw(signatures),
        }
    if draw(st.booleans()):
        # Any text: a string that is no claim code is a failed proof, not a malformed request.
        body["claim_code"] = draw(
            st.text(st.characters(exclude_categories=["Cc"], codec="utf-8"), min_size=1, max_size=32)
        )
    return body


@given(activation_requests())
def test_every_well_formed_activation_request_is_accepted_as_sent(body):
    request = parse_activation(body)
    assert (request.vendor, request.model, request.identifiers, request.public_key) == (
        body["vendor"],
        body["model"],
        body["identifiers"],
        body["public_key"],
    )
    assert request.attestation == body.get("attestation")
    assert request.claim_code == body.get("claim_code")


def refusal(parse, *args):
    """The InvalidRequest `parse` raises, or None if it accepts."""
    try:
        parse(*args)
    except InvalidRequest as invalid:
        return invalid
    return None


@given(
    activation_requests(),
    st.sampled_from(["vendor", "model", "identifiers", "public_key"]),
    json_values.filter(lambda value: not isinstance(value, str | dict)),
)
def test_a_value_of_the_wrong_type_in_any_field_is_refused_naming_that_field(body, field, value):
    invalid = refusal(parse_activation, {**body, field: value})
    assert invalid is not None
    assert field in invalid.fields


@given(activation_requests(), st.text(min_size=1, max_size=12), json_values)
def test_an_unknown_field_is_refused_by_name(body, name, value):
    if name in body or name in ("attestation", "claim_code"):
        return
    with pytest.raises(InvalidRequest) as refused:
        parse_activation({**body, name: value})
    assert name in refused.value.fields


@given(st.binary(max_size=200))
def test_any_bytes_either_parse_as_a_json_object_or_are_refused(raw):
    invalid = refusal(parse_json_object, raw)
    if invalid is None:
        assert isinstance(parse_json_object(raw), dict)
    else:
        assert invalid.fields == {}


@given(json_values)
def test_any_json_value_is_either_an_activation_request_or_refused(value):
    invalid = refusal(parse_activation, value if isinstance(value, dict) else {"value": value})
    assert invalid is not None, "random JSON never has the four required fields"
    assert invalid.fields


@given(st.dictionaries(st.from_regex(r"[a-z_]{1,20}", fullmatch=True), st.floats(), max_size=40))
def test_metrics_are_accepted_only_when_at_most_1e15_in_magnitude_and_at_most_32(metrics):
    bounded = all(math.isfinite(value) and abs(value) <= 1e15 for value in metrics.values())
    accepted = refusal(parse_heartbeat, {"metrics": metrics}) is None
    assert accepted == (bounded and len(metrics) <= 32)


@pytest.mark.parametrize("value", [1e308, -1e308, 10**400, 1e15 + 1])
def test_a_metric_a_float8_sum_could_overflow_is_refused(value):
    invalid = refusal(parse_heartbeat, {"metrics": {"cpu": value}})
    assert invalid is not None
    assert "metrics.cpu" in invalid.fields


@given(st.text(max_size=8))
def test_wait_is_accepted_only_between_0_and_10_seconds(raw):
    invalid = refusal(parse_wait, raw)
    if invalid is None:
        assert 0 < parse_wait(raw) <= 10
    else:
        assert "wait" in invalid.fields


@pytest.mark.django_db
@settings(max_examples=75, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.one_of(st.binary(max_size=300), json_values.map(lambda value: json.dumps(value).encode())))
def test_no_body_posted_to_the_device_api_gives_a_500(client, settings, body):
    settings.ACTIVATION_RATE_PER_ADDRESS = 10**6
    cache.clear()
    for path in ["/api/v1/activations", "/api/v1/activations?wait=0.1", "/api/v1/device/heartbeat"]:
        response = client.post(path, body, content_type="application/json")
        assert response.status_code in {202, 400, 401}
        assert "error" in response.json() or response.status_code == 202


@given(st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=5)))
def test_config_version_is_accepted_only_as_a_whole_number_from_zero(version):
    accepted = refusal(parse_heartbeat, {"metrics": {}, "config_version": version}) is None
    # JSON does not tell 3 from 3.0, nor does the description's "integer": both are 3.
    whole = version is None or (
        type(version) in (int, float) and math.isfinite(version) and version == int(version) and 0 <= version < 2**31
    )
    assert accepted == whole


@pytest.mark.parametrize("wait", ["1_0", "inf", "nan", "\u0661", "-1", "0", "10.5", " 1", "1" * 40])
def test_wait_is_a_plain_ascii_number_of_seconds(wait):
    with pytest.raises(InvalidRequest):
        parse_wait(wait)


@pytest.mark.parametrize(("wait", "seconds"), [("1", 1.0), ("0.5", 0.5), ("10", 10.0), ("2e0", 2.0), (".25", 0.25)])
def test_wait_accepts_decimal_seconds(wait, seconds):
    assert parse_wait(wait) == seconds
