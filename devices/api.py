"""The device API (docs/device-api.md; OpenAPI at /api/v1/openapi.json): sessionless, CSRF-exempt JSON.

Views parse and check the request's shape, call the rules in activation.py / actions.py, and answer.
Every error is `{"error": {"code", "message", ...}}`; no input gives a 500.
"""

import json
import math
import re
import uuid
from dataclasses import replace

from django.http import JsonResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.csrf import csrf_exempt

from portal.client import client_address, client_ip
from portal.errors import UserFacingError
from portal.ratelimit import RateLimit, RateLimitExceeded, RateLimitUnavailable, count_attempt
from portal.unavailable import unavailable_response
from vendors.attestation import (
    ATTESTATION_FIELDS,
    ED25519_KEY_BYTES,
    ED25519_SIGNATURE_BYTES,
    MAX_BATCH_NAME,
    SIGNED_AT,
    b64url_decode,
    is_b64url,
)

from .activation import MAX_CLAIM_CODE, ActivationRequest
from .activation_queue import answer_when_finished, start_activation
from .authentication import device_from_bearer
from .commands import MAX_OUTPUT as MAX_COMMAND_OUTPUT
from .commands import CommandError, deliver_pending_commands, report_command_result
from .configuration import desired_configuration
from .models import ActivationOperation, Command
from .telemetry import record_heartbeat

MAX_BODY = 16 * 1024
MAX_WAIT = 10
MAX_METRICS = 32
# A metric's magnitude at most: the rollups sum a year of minutes in float8, which a few values
# near the largest double would overflow, failing the roll-up of every device at once.
MAX_METRIC_VALUE = 1e15
SLUG = re.compile(r"^[A-Za-z0-9_-]{1,50}$")
IDENTIFIER_KEY = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
SECONDS = re.compile(r"(?=.{1,32}$)[0-9]*\.?[0-9]+([eE][-+]?[0-9]+)?", re.ASCII)
METRIC_NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
ACTIVATION_FIELDS = {"vendor", "model", "identifiers", "public_key", "attestation", "claim_code"}


# Activation requests per minute: every request counts against its client's address (malformed
# ones too), a well-formed one against its unit as well. Counted once the body is parsed, before
# anything is written; while Redis is unreachable requests are let through (a device refused
# would only retry, and the operation rows in PostgreSQL still bound the work), except those that
# carry a claim code: an uncounted one is a guess of the unit's secret, the very thing the unit's
# limit stops, so it is refused (503) until the counters are back. Same counter, either way.
ACTIVATIONS_PER_ADDRESS = RateLimit("activations:address", limit="ACTIVATION_RATE_PER_ADDRESS", fail_open=True)
ACTIVATIONS_PER_UNIT = RateLimit("activations:unit", limit="ACTIVATION_RATE_PER_IDENTITY", fail_open=True)
CLAIM_CODE_ACTIVATIONS_PER_UNIT = replace(ACTIVATIONS_PER_UNIT, fail_open=False)


class InvalidRequest(UserFacingError):
    """A malformed request: `fields` maps each offending field (dotted path) to what is wrong."""

    def __init__(self, message, fields=None):
        super().__init__(message)
        self.fields = fields or {}


def error_response(status, code, message, **extra):
    return JsonResponse({"error": {"code": code, "message": message, **extra}}, status=status)


def _reject_constant(name):
    raise ValueError(f"{name} is not a number")


def parse_json_object(body: bytes) -> dict:
    """The request body as a JSON object; InvalidRequest otherwise (NaN and Infinity are not JSON)."""
    try:
        data = json.loads(body, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        raise InvalidRequest("The body is not valid JSON.") from exc
    if not isinstance(data, dict):
        raise InvalidRequest("The body must be a JSON object.")
    return data


def _string(data, name, errors, *, pattern=None, max_length=None):
    value = data.get(name)
    if not isinstance(value, str):
        errors[name] = "Required: a string." if value is None else "Must be a string."
        return None
    if (max_length and len(value) > max_length) or (pattern and not pattern.fullmatch(value)):
        errors[name] = "Not in the expected format."
        return None
    return value


# C0, DEL and C1 control characters.
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# Command output is several lines: tab, line feed and carriage return are allowed there.
CONTROL_CHARACTERS_BUT_LINE_BREAKS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
MAX_ECHOED_NAME = 64


def _plain_text(value, max_length, *, min_length=1, barred=CONTROL_CHARACTERS):
    """A string of `min_length` to `max_length` characters that PostgreSQL can store: none of the
    `barred` control characters (NUL cannot be stored at all) and no lone surrogates. Every text
    a device sends is checked by this one function."""
    if not isinstance(value, str) or not min_length <= len(value) <= max_length or barred.search(value):
        return False
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True


def _multiline_text(value, max_length):
    """Plain text that may be empty and hold tabs and line breaks: a command's output."""
    return _plain_text(value, max_length, min_length=0, barred=CONTROL_CHARACTERS_BUT_LINE_BREAKS)


def _echoed(name):
    """A field name as an error names it back: shortened, and a lone surrogate escaped (it would
    make the answer invalid JSON)."""
    return name[:MAX_ECHOED_NAME].encode("utf-8", "backslashreplace").decode()


def _unknown_fields(data, known, prefix=""):
    return {f"{prefix}{_echoed(name)}": "Unknown field." for name in sorted(set(data) - known)}


def _base64url(value, name, errors, *, length=None):
    try:
        raw = b64url_decode(value) if is_b64url(value) else None
    except ValueError:
        raw = None
    if raw is None:
        errors[name] = "Must be base64url without padding."
    elif length is not None and len(raw) != length:
        errors[name] = f"Must encode exactly {length} bytes."


def parse_activation(data: dict) -> ActivationRequest:
    """Check the shape of an activation request (docs/device-api.md); InvalidRequest names each bad field."""
    errors = _unknown_fields(data, ACTIVATION_FIELDS)
    vendor = _string(data, "vendor", errors, pattern=SLUG)
    model = _string(data, "model", errors, pattern=SLUG)
    public_key = _string(data, "public_key", errors, max_length=64)
    if public_key is not None:
        _base64url(public_key, "public_key", errors, length=32)

    identifiers = data.get("identifiers")
    if not isinstance(identifiers, dict) or not 1 <= len(identifiers) <= 3:
        errors["identifiers"] = "Required: an object of 1 to 3 identifiers, each a string."
    else:
        for key, value in identifiers.items():
            if not IDENTIFIER_KEY.fullmatch(key):
                errors[f"identifiers.{_echoed(key)}"] = "Unknown identifier name."
            elif not _plain_text(value, 128):
                errors[f"identifiers.{key}"] = "Must be a string of 1 to 128 characters, without control characters."

    attestation = data.get("attestation")
    if attestation is not None:
        errors |= _attestation_errors(attestation)
    # Only the shape is checked here: a string that is no claim code fails as a wrong one would.
    claim_code = data.get("claim_code")
    if claim_code is not None and not _plain_text(claim_code, MAX_CLAIM_CODE):
        errors["claim_code"] = f"Must be a string of 1 to {MAX_CLAIM_CODE} characters, without control characters."
    if errors:
        raise InvalidRequest("The activation request is malformed.", errors)
    return ActivationRequest(vendor, model, identifiers, public_key, attestation, claim_code)


def _attestation_errors(attestation) -> dict:
    """What is wrong with the shape of an attestation object, by dotted field name."""
    if not isinstance(attestation, dict):
        return {"attestation": f"Must be an object with {', '.join(sorted(ATTESTATION_FIELDS))}."}
    errors = _unknown_fields(attestation, ATTESTATION_FIELDS, prefix="attestation.")
    if not _plain_text(attestation.get("batch"), MAX_BATCH_NAME):
        errors["attestation.batch"] = (
            f"Required: a string of 1 to {MAX_BATCH_NAME} characters, without control characters."
        )
    for name, length in (
        ("unit_public_key", ED25519_KEY_BYTES),
        ("certificate", ED25519_SIGNATURE_BYTES),
        ("signature", ED25519_SIGNATURE_BYTES),
    ):
        value = attestation.get(name)
        if not isinstance(value, str) or len(value) > 2 * length:
            errors[f"attestation.{name}"] = f"Required: {length} bytes, base64url without padding."
        else:
            _base64url(value, f"attestation.{name}", errors, length=length)
    signed_at = attestation.get("signed_at")
    if not isinstance(signed_at, str) or not SIGNED_AT.fullmatch(signed_at):
        errors["attestation.signed_at"] = 'Required: an RFC 3339 UTC time, e.g. "2026-12-01T12:00:00Z".'
    return errors


def parse_wait(raw) -> float | None:
    """The `?wait=N` seconds (0 < N <= 10), None when absent; InvalidRequest otherwise."""
    if raw is None:
        return None
    # A plain ASCII decimal number: float() would also take "1_0", "inf" and digits of other scripts.
    seconds = float(raw) if SECONDS.fullmatch(raw) else math.nan
    if not (0 < seconds <= MAX_WAIT):
        raise InvalidRequest("wait must be a number of seconds, more than 0 and at most 10.", {"wait": "Out of range."})
    return seconds


def parse_heartbeat(data: dict) -> tuple[dict, int | None]:
    """Check a heartbeat: {"metrics": {name: number}} with at most 32 metrics of magnitude at most
    MAX_METRIC_VALUE, and the optional "config_version" the device has applied. Returns (metrics,
    config_version)."""
    errors = _unknown_fields(data, {"metrics", "config_version"})
    config_version = data.get("config_version")
    if config_version is not None:
        config_version = _whole_number(config_version, below=2**31)
        if config_version is None:
            errors["config_version"] = "Must be a whole number, 0 or more."
    metrics = data.get("metrics")
    if not isinstance(metrics, dict):
        errors["metrics"] = "Required: an object of name: number."
    elif len(metrics) > MAX_METRICS:
        errors["metrics"] = f"At most {MAX_METRICS} metrics."
    else:
        for name, value in metrics.items():
            if not METRIC_NAME.fullmatch(name):
                errors[f"metrics.{_echoed(name)}"] = "Metric names are 1 to 64 letters, digits or _ . : -."
            elif (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not _finite(value)
                or abs(value) > MAX_METRIC_VALUE
            ):
                errors[f"metrics.{name}"] = "Must be a number from -1e15 to 1e15."
    if errors:
        raise InvalidRequest("The heartbeat is malformed.", errors)
    return metrics, config_version


def _whole_number(value, *, below):
    """`value` as an int when it is a whole number from 0 to `below` - 1, None otherwise. JSON does
    not tell 3 from 3.0 (nor does JSON Schema's "integer"), so 3.0 is 3."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not _finite(value):
        return None
    if value != int(value) or not 0 <= value < below:
        return None
    return int(value)


def _finite(number):
    try:
        return math.isfinite(number)
    except OverflowError:  # an integer too large for a float
        return False


def body_too_large(request):
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    return declared > MAX_BODY or len(request.body) > MAX_BODY


def too_many_requests(retry_after):
    response = error_response(429, "rate_limited", "Too many activation requests; retry later.")
    response["Retry-After"] = str(retry_after)
    return response


def operation_response(result, status):
    """The answer about an activation operation, given its ActivationOperation.to_dict()."""
    response = JsonResponse(result, status=status)
    if result["status"] == ActivationOperation.Status.ASSIGNING:
        response["Retry-After"] = "1"
    return response


def unauthorized():
    response = error_response(401, "unauthorized", "Authentication failed.")
    response["WWW-Authenticate"] = 'Bearer realm="device"'
    return response


@method_decorator(csrf_exempt, name="dispatch")
class DeviceAPIView(View):
    """Base of the device API views: no CSRF (devices hold no cookies) and JSON errors for other methods."""

    def http_method_not_allowed(self, request, *args, **kwargs):
        response = error_response(405, "method_not_allowed", f"{request.method} is not allowed here.")
        response["Allow"] = ", ".join(method.upper() for method in self._allowed_methods())
        return response


class ActivationsView(DeviceAPIView):
    """POST /api/v1/activations: accept an activation request (202), or answer it finished with ?wait=N (200)."""

    http_method_names = ["post"]

    def post(self, request):
        refusal = None
        if body_too_large(request):
            refusal = error_response(413, "too_large", f"The body must be at most {MAX_BODY} bytes.")
        else:
            try:
                wait = parse_wait(request.GET.get("wait"))
                activation_request = parse_activation(parse_json_object(request.body))
            except InvalidRequest as invalid:
                refusal = error_response(400, "invalid_request", invalid.message, fields=invalid.fields)
        attempts = [(ACTIVATIONS_PER_ADDRESS, client_address(request))]
        if refusal is None:
            guesses_a_code = activation_request.claim_code is not None
            unit_limit = CLAIM_CODE_ACTIVATIONS_PER_UNIT if guesses_a_code else ACTIVATIONS_PER_UNIT
            attempts.append((unit_limit, activation_request.identity_key()))
        try:
            count_attempt(*attempts)
        except RateLimitExceeded as exceeded:
            return too_many_requests(exceeded.retry_after)
        except RateLimitUnavailable:
            return unavailable_response(request)
        if refusal is not None:
            return refusal

        operation = start_activation(activation_request, client_address=client_ip(request))
        result = operation.to_dict() if wait is None else answer_when_finished(operation, wait)
        if result["status"] != ActivationOperation.Status.ASSIGNING:
            return operation_response(result, 200)
        response = operation_response(result, 202)
        response["Location"] = reverse("device-api:activation", args=[operation.pk])
        return response


class ActivationView(DeviceAPIView):
    """GET /api/v1/activations/<operation_id>: the operation's state and, once assigned, the server's key."""

    http_method_names = ["get"]

    def get(self, request, operation_id):
        try:
            operation = ActivationOperation.objects.select_related("device").filter(pk=uuid.UUID(operation_id)).first()
        except ValueError:  # not a UUID: no such operation either
            operation = None
        if operation is None:
            return error_response(404, "not_found", "There is no activation operation with this id.")
        return operation_response(operation.to_dict(), 200)


@method_decorator(csrf_exempt, name="dispatch")  # as_view() reads the exemption off the latest dispatch
class DeviceKeyView(DeviceAPIView):
    """Base of the calls a device makes with its key: an oversized body gets 413 and a missing or
    wrong key 401 before the view runs; the view finds the device in `self.device` (and, if
    `reads_waiting`, what waits for it in `self.device.waiting`, read by the same statement)."""

    reads_waiting = False

    def dispatch(self, request, *args, **kwargs):
        if request.method.lower() not in self.http_method_names:
            return super().dispatch(request, *args, **kwargs)  # 405, asking nothing of the caller
        if body_too_large(request):
            return error_response(413, "too_large", f"The body must be at most {MAX_BODY} bytes.")
        self.device = device_from_bearer(request, with_waiting=self.reads_waiting)
        if self.device is None:
            return unauthorized()
        return super().dispatch(request, *args, **kwargs)


class HeartbeatView(DeviceKeyView):
    """POST /api/v1/device/heartbeat, authenticated by the device key: records the heartbeat (the
    device seen, its metrics kept: batched by a writer, see telemetry.record_heartbeat) and says
    whether commands or a newer configuration wait for it."""

    http_method_names = ["post"]
    reads_waiting = True

    def post(self, request):
        device = self.device
        try:
            metrics, config_version = parse_heartbeat(parse_json_object(request.body))
        except InvalidRequest as invalid:
            return error_response(400, "invalid_request", invalid.message, fields=invalid.fields)
        waiting = record_heartbeat(device, metrics=metrics, config_version=config_version, waiting=device.waiting)
        if waiting is None:  # the key was revoked since it was checked
            return unauthorized()
        return JsonResponse(
            {
                "device": {"id": str(device.code), "status": device.status},
                "server_time": timezone.now().isoformat(),
                "commands_pending": waiting["commands_pending"],
                "config_version": waiting["config_version"],
            }
        )


def command_json(command):
    return {
        "id": str(command.code),
        "name": command.name,
        "arguments": command.arguments,
        "status": command.status,
        "created_at": command.created_at.isoformat(),
    }


class CommandsView(DeviceKeyView):
    """GET /api/v1/device/commands: the commands the device should run now, oldest first."""

    http_method_names = ["get"]

    def get(self, request):
        device = self.device
        return JsonResponse({"commands": [command_json(c) for c in deliver_pending_commands(device)]})


class CommandResultView(DeviceKeyView):
    """POST /api/v1/device/commands/<id>/result: the device reports how a command went."""

    http_method_names = ["post"]

    def post(self, request, command_id):
        device = self.device
        try:
            succeeded, output = parse_command_result(parse_json_object(request.body))
            code = uuid.UUID(command_id)
        except InvalidRequest as invalid:
            return error_response(400, "invalid_request", invalid.message, fields=invalid.fields)
        except ValueError:
            return error_response(404, "not_found", "This device has no such command.")
        try:
            command = report_command_result(device, command_code=code, succeeded=succeeded, output=output)
        except Command.DoesNotExist:
            return error_response(404, "not_found", "This device has no such command.")
        except CommandError as refusal:
            return error_response(409, "already_final", str(refusal))
        return JsonResponse({"command": command_json(command)})


def parse_command_result(data):
    """{"status": "succeeded" | "failed", "output": text (optional, at most 4000 characters, lines
    allowed)}. Returns (succeeded, output)."""
    errors = _unknown_fields(data, {"status", "output"})
    status = data.get("status")
    if status not in ("succeeded", "failed"):
        errors["status"] = 'Required: "succeeded" or "failed".'
    output = data.get("output", "")
    if not _multiline_text(output, MAX_COMMAND_OUTPUT):
        errors["output"] = (
            f"Text of at most {MAX_COMMAND_OUTPUT} characters, without control characters but tab and line breaks."
        )
    if errors:
        raise InvalidRequest("The command result is malformed.", errors)
    return status == "succeeded", output


class ConfigurationView(DeviceKeyView):
    """GET /api/v1/device/config: the configuration the device should run, with its version."""

    http_method_names = ["get"]

    def get(self, request):
        device = self.device
        version, values = desired_configuration(device)
        return JsonResponse({"version": version, "config": values})


class HealthView(DeviceAPIView):
    """GET /api/v1/health: a trivial JSON answer (load balancers; the benchmark's baseline)."""

    http_method_names = ["get"]

    def get(self, request):
        return JsonResponse({"status": "ok"})
