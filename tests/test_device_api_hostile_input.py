"""The device API's bodies with what PostgreSQL cannot store or Python cannot parse, and with every
limit met exactly and passed by one: a documented answer each time (devices/openapi.py), never a
500. Sent with the key of a really activated device (the `fleet`), over WSGI."""

import json
import math
import re
import string
from dataclasses import dataclass

import schemathesis
from django.core.wsgi import get_wsgi_application
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from werkzeug.test import Client

from devices.models import Command
from vendors.attestation import b64url_encode

schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", get_wsgi_application())
api = Client(get_wsgi_application())

ACTIVATIONS = "/api/v1/activations"
HEARTBEAT = "/api/v1/device/heartbeat"
MAX_BODY = 16 * 1024
PUBLIC_KEY = b64url_encode(bytes(range(1, 33)))


def send(fleet, path, body):
    """POST `body` (JSON text as it is, or an object to encode) with the device's key; the answer
    is one the description documents for the operation, and conforms to it."""
    data = body if isinstance(body, bytes) else encoded(body)
    response = api.post(path, data=data, content_type="application/json", headers=fleet.authorization)
    operation = schema[re.sub(r"/commands/[^/]+/", "/commands/{command_id}/", path.split("?")[0])]["POST"]
    assert str(response.status_code) in operation.responses.status_codes, response.text
    operation.validate_response(response)
    return response


@dataclass(frozen=True)
class Raw:
    """JSON text sent as it is, where `json.dumps` would not write it: a number past a double,
    5,000 digits (past Python's limit for an int), nesting past Python's recursion limit."""

    text: str


def encoded(body):
    """`body` as a device sends it: JSON in UTF-8, a lone surrogate (which UTF-8 cannot carry) as
    its escape, each Raw value spliced in as it is."""
    raws = []

    def placeholder(raw):
        raws.append(raw.text)
        return f"@raw{len(raws) - 1}@"

    text = json.dumps(body, default=placeholder, ensure_ascii=False)
    for index, raw in enumerate(raws):
        text = text.replace(f'"@raw{index}@"', raw)
    return text.encode(errors="backslashreplace")


def barred(text):
    """Text that no field of the device API takes: a lone surrogate, NUL or another C0, DEL or C1
    control character (tab, line feed and carriage return are allowed in command output)."""
    return any(
        0xD800 <= ord(c) <= 0xDFFF or (ord(c) < 0x20 and c not in "\t\n\r") or 0x7F <= ord(c) <= 0x9F for c in text
    )


HOSTILE_TEXT = (
    st.lists(
        st.text(max_size=3)
        | st.characters(categories=["Cs"])
        | st.sampled_from(["\x00", "\x01", "\x1b", "\x7f", "\x85", "\x9b"]),
        min_size=1,
        max_size=4,
    )
    .map("".join)
    .filter(barred)
)
HUGE_NUMBERS = st.sampled_from([10**400, -(10**400), Raw("1e999"), Raw("-1e999"), Raw("9" * 5000)])
# Deep enough to pass Python's recursion limit, small enough to stay under the 16 KB body limit.
DEEP_NESTING = st.integers(min_value=50, max_value=2500).flatmap(
    lambda depth: st.sampled_from([Raw("[" * depth + "]" * depth), Raw('{"a":' * depth + "0" + "}" * depth)])
)


def _places(value, path=()):
    """(path, is_key) of the whole of `value` and of every key and value inside it."""
    yield path, False
    if isinstance(value, dict):
        for key, item in value.items():
            yield (*path, key), True
            yield from _places(item, (*path, key))


@st.composite
def spoiled(draw, body):
    """`body` with one key or value anywhere in it, or the whole of it, replaced by a hostile one."""
    path, is_key = draw(st.sampled_from(list(_places(body))))
    hostile = draw(HOSTILE_TEXT if is_key else HOSTILE_TEXT | HUGE_NUMBERS | DEEP_NESTING)
    if not path:
        return hostile
    spoilt = json.loads(json.dumps(body))
    parent = spoilt
    for step in path[:-1]:
        parent = parent[step]
    if is_key:
        parent[hostile] = parent.pop(path[-1])
    else:
        parent[path[-1]] = hostile
    return spoilt


@settings(max_examples=150, derandomize=True, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_surrogates_nul_huge_numbers_and_deep_nesting_anywhere_in_a_body_are_invalid_requests(fleet, data):
    command_id = fleet.command_ids[2]  # queued: a well-formed result would be recorded
    path, body = data.draw(
        st.sampled_from(
            [
                (ACTIVATIONS, {**fleet.units[0], "public_key": PUBLIC_KEY}),
                (HEARTBEAT, {"metrics": {"cpu": 1.5, "uptime": 3600}, "config_version": 0}),
                (f"/api/v1/device/commands/{command_id}/result", {"status": "succeeded", "output": "done\nok"}),
            ]
        )
    )
    response = send(fleet, path, data.draw(spoiled(body)))
    assert response.status_code == 400, response.text
    assert response.json["error"]["code"] == "invalid_request"
    assert Command.objects.get(code=command_id).status == Command.Status.QUEUED


def test_command_output_with_a_lone_surrogate_nul_or_a_control_character_is_an_invalid_request(fleet):
    command_id = fleet.queued_command()
    path = f"/api/v1/device/commands/{command_id}/result"
    for output in ["\ud800", "done \udfff", "a\x00b", "\x1b[2J", "bell\x07"]:
        response = send(fleet, path, {"status": "succeeded", "output": output})
        assert response.status_code == 400, f"{output!r}: {response.status_code}"
        assert set(response.json["error"]["fields"]) == {"output"}
    assert Command.objects.get(code=command_id).status == Command.Status.QUEUED


def test_command_output_of_several_lines_is_recorded_as_sent(fleet):
    command_id = fleet.queued_command()
    output = "line 1\n\tindented\r\nline 3 \u263a"
    response = send(fleet, f"/api/v1/device/commands/{command_id}/result", {"status": "failed", "output": output})
    assert response.status_code == 200, response.text
    assert Command.objects.get(code=command_id).output == output


# Every limit of the device API: (what, the request with a value of a given size, sizes accepted,
# sizes refused, the field a refusal names). Sizes are lengths, counts or the value itself.
SLUG_CHARACTERS = string.ascii_letters + string.digits + "_-"
PLAIN_CHARACTERS = st.characters(codec="utf-8", exclude_categories=["Cc"])
IDENTIFIER_NAME_CHARACTERS = string.ascii_lowercase + string.digits + "_"


def _text(characters, size):
    return st.text(characters, min_size=size, max_size=size)


def _identifier_name(size):
    return st.builds(str.__add__, st.sampled_from(string.ascii_lowercase), _text(IDENTIFIER_NAME_CHARACTERS, size - 1))


def activation(fleet, query="", **fields):
    return ACTIVATIONS + query, {**fleet.units[0], "public_key": PUBLIC_KEY, **fields}


def attestation(**fields):
    """An attestation of the right shape (it proves nothing), with `fields` replaced."""
    return {
        "batch": "b",
        "unit_public_key": b64url_encode(bytes(32)),
        "certificate": b64url_encode(bytes(64)),
        "signed_at": "2026-12-01T12:00:00Z",
        "signature": b64url_encode(bytes(64)),
    } | fields


def heartbeat(**fields):
    return HEARTBEAT, {"metrics": {"cpu": 1.5}, **fields}


def command_result(fleet, **fields):
    return f"/api/v1/device/commands/{fleet.queued_command()}/result", {"status": "succeeded", **fields}


def padded(request, size):
    """`request` with its JSON body padded with spaces to `size` bytes."""
    path, body = request
    text = encoded(body)
    return path, text + b" " * (size - len(text))


LIMITS = [
    ("vendor", lambda f, draw, n: activation(f, vendor=draw(_text(SLUG_CHARACTERS, n))), [1, 50], [0, 51], "vendor"),
    ("model", lambda f, draw, n: activation(f, model=draw(_text(SLUG_CHARACTERS, n))), [1, 50], [0, 51], "model"),
    (
        "identifier count",
        lambda f, draw, n: activation(
            f, identifiers=draw(st.dictionaries(_identifier_name(8), st.just("SN-1"), min_size=n, max_size=n))
        ),
        [1, 3],
        [0, 4],
        "identifiers",
    ),
    (
        "identifier name",
        lambda f, draw, n: activation(f, identifiers={draw(_identifier_name(n)): "SN-1"}),
        [1, 32],
        [33],
        "identifiers.",
    ),
    (
        "identifier value",
        lambda f, draw, n: activation(f, identifiers={"serial_number": draw(_text(PLAIN_CHARACTERS, n))}),
        [1, 128],
        [0, 129],
        "identifiers.serial_number",
    ),
    (
        "public key bytes",
        lambda f, draw, n: activation(f, public_key=b64url_encode(draw(st.binary(min_size=n, max_size=n)))),
        [32],
        [31, 33],
        "public_key",
    ),
    (
        "batch name",
        lambda f, draw, n: activation(f, attestation=attestation(batch=draw(_text(PLAIN_CHARACTERS, n)))),
        [1, 64],
        [0, 65],
        "attestation.batch",
    ),
    *[
        (
            f"{name} bytes",
            lambda f, draw, n, name=name: activation(
                f, attestation=attestation(**{name: b64url_encode(draw(st.binary(min_size=n, max_size=n)))})
            ),
            [size],
            [size - 1, size + 1],
            f"attestation.{name}",
        )
        for name, size in (("unit_public_key", 32), ("certificate", 64), ("signature", 64))
    ],
    (
        "claim code",
        lambda f, draw, n: activation(f, claim_code=draw(_text(PLAIN_CHARACTERS, n))),
        [1, 32],
        [0, 33],
        "claim_code",
    ),
    ("wait", lambda f, draw, n: activation(f, f"?wait={n!r}"), [5e-324, 10.0], [0.0, math.nextafter(10, 11)], "wait"),
    ("activation body", lambda f, draw, n: padded(activation(f), n), [MAX_BODY], [MAX_BODY + 1], None),
    (
        "metric count",
        lambda f, draw, n: heartbeat(metrics={f"m{i}": float(i) for i in range(n)}),
        [0, 32],
        [33],
        "metrics",
    ),
    (
        "metric name",
        lambda f, draw, n: heartbeat(metrics={draw(_text(SLUG_CHARACTERS + ".:", n)): 1}),
        [1, 64],
        [0, 65],
        "metrics.",
    ),
    ("config version", lambda f, draw, n: heartbeat(config_version=n), [0, 2**31 - 1], [-1, 2**31], "config_version"),
    ("heartbeat body", lambda f, draw, n: padded(heartbeat(), n), [MAX_BODY], [MAX_BODY + 1], None),
    (
        "command output",
        lambda f, draw, n: command_result(f, output=draw(_text(PLAIN_CHARACTERS | st.sampled_from("\t\n\r"), n))),
        [0, 4000],
        [4001],
        "output",
    ),
    ("command result body", lambda f, draw, n: padded(command_result(f), n), [MAX_BODY], [MAX_BODY + 1], None),
]


@settings(max_examples=6, derandomize=True, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_every_limit_is_accepted_at_the_limit_and_refused_one_past_it(fleet, data):
    for what, request, accepted, refused, field in LIMITS:
        for size in accepted:
            response = send(fleet, *request(fleet, data.draw, size))
            assert response.status_code in (200, 202), f"{what} of {size}: {response.text}"
        for size in refused:
            response = send(fleet, *request(fleet, data.draw, size))
            if field is None:
                assert response.status_code == 413, f"{what} of {size}: {response.status_code}"
                assert response.json["error"]["code"] == "too_large"
            else:
                assert response.status_code == 400, f"{what} of {size}: {response.text}"
                assert any(name.startswith(field) for name in response.json["error"]["fields"]), response.text
