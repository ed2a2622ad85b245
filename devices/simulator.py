"""The reference client of the device API: what a unit's firmware does, over real HTTP.

Makes an X25519 key pair, asks to activate, waits for the operation, derives the device key the
same way the server does (devices/keys.py), then authenticates heartbeats with it. Used by the
`simulate_devices` command, the tests and the benchmark.
"""

import http.client
import json
import statistics
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from vendors.attestation import b64url_decode, b64url_encode, format_signed_at, request_message, sign

from .keys import derive_device_key, public_bytes, shared_secret

# Answers that ask the device to try again after Retry-After seconds.
RETRY_LATER = (429, 503)
# What of a unit (a line of `seed_demo --list`) its activation request carries as it is.
REQUEST_FIELDS = ("vendor", "model", "identifiers", "claim_code", "attestation")


class ActivationFailed(Exception):
    def __init__(self, code, message):
        super().__init__(f"{code}: {message}")
        self.code = code


@dataclass
class Response:
    status: int
    headers: dict
    body: dict


class HttpClient:
    """A keep-alive HTTP/1.1 connection per thread to one base URL."""

    def __init__(self, base_url, timeout=30):
        parts = urlsplit(base_url)
        self.host, self.port, self.https = parts.hostname, parts.port, parts.scheme == "https"
        self.timeout = timeout
        self._local = threading.local()

    def _connection(self):
        connection = getattr(self._local, "connection", None)
        if connection is None:
            cls = http.client.HTTPSConnection if self.https else http.client.HTTPConnection
            connection = self._local.connection = cls(self.host, self.port, timeout=self.timeout)
        return connection

    def request(self, method, path, body=None, headers=None) -> Response:
        payload = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json", **(headers or {})}
        for attempt in range(2):
            connection = self._connection()
            try:
                connection.request(method, path, body=payload, headers=headers)
                raw = connection.getresponse()
                data = raw.read()
                if raw.getheader("Connection", "").lower() == "close":
                    connection.close()
                # Only JSON is parsed: a proxy's or a server's error page is an answer too.
                is_json = raw.getheader("Content-Type", "").startswith("application/json")
                return Response(
                    raw.status, {k.lower(): v for k, v in raw.getheaders()}, json.loads(data) if is_json else {}
                )
            except (http.client.RemoteDisconnected, ConnectionError, http.client.CannotSendRequest):
                connection.close()
                self._local.connection = None
                if attempt:
                    raise
        raise AssertionError("unreachable")


@dataclass
class SimulatedDevice:
    """One unit: `unit` is a line of `seed_demo --list` (vendor, model, identifiers, and its claim
    code, or its attestation and unit_private_key, if its model requires them)."""

    unit: dict
    private_key: X25519PrivateKey = field(default_factory=X25519PrivateKey.generate)
    device_id: str | None = None
    device_key: bytes | None = None

    def activation_request(self, signed_at=None):
        """The body of the activation request, signed now (or at `signed_at`) by the unit key as
        firmware signs it, when the unit has one (docs/device-api.md)."""
        request = {name: self.unit[name] for name in REQUEST_FIELDS if name in self.unit}
        request["public_key"] = b64url_encode(public_bytes(self.private_key))
        if "unit_private_key" in self.unit:
            unit_key = Ed25519PrivateKey.from_private_bytes(b64url_decode(self.unit["unit_private_key"]))
            stamp = format_signed_at(signed_at or datetime.now(UTC))
            message = request_message(
                request["vendor"], request["model"], request["identifiers"], request["public_key"], stamp
            )
            request["attestation"] = {
                **request["attestation"],
                "signed_at": stamp,
                "signature": sign(unit_key, message),
            }
        return request

    def activate(self, client: HttpClient, wait=10, deadline_seconds=120):
        """Activate: POST (held by the server up to `wait` s, if given), poll Location while assigning, derive the key.

        Honors Retry-After on 429 and 503 (the server could not reach a service it needs).
        Raises ActivationFailed with the operation's error code.
        """
        deadline = time.monotonic() + deadline_seconds
        while True:
            path = "/api/v1/activations" + (f"?wait={wait}" if wait else "")
            response = client.request("POST", path, self.activation_request())
            if response.status not in RETRY_LATER:
                break
            self._pause(response, deadline)
        if response.status not in (200, 202):
            raise ActivationFailed(response.body.get("error", {}).get("code", str(response.status)), response.body)
        location = response.headers.get("location")
        while response.status in RETRY_LATER or response.body.get("status") == "assigning":
            self._pause(response, deadline)
            response = client.request("GET", location)
        if response.status != 200:
            raise ActivationFailed(str(response.status), response.body)
        return self.finish_activation(response.body)

    def finish_activation(self, operation):
        """Given a finished operation's body: keep the device id and derive the device key."""
        if operation["status"] == "failed":
            raise ActivationFailed(operation["error"]["code"], operation["error"]["message"])
        secret = shared_secret(self.private_key, b64url_decode(operation["server_public_key"]))
        self.device_id = operation["device"]["id"]
        self.device_key = derive_device_key(secret, uuid.UUID(operation["operation_id"]), uuid.UUID(self.device_id))
        return self.device_key

    @property
    def authorization(self):
        return {"Authorization": f"Bearer {b64url_encode(self.device_key)}"}

    def heartbeat(self, client: HttpClient, metrics=None, config_version=None) -> Response:
        body = {"metrics": metrics or {}}
        if config_version is not None:
            body["config_version"] = config_version
        return client.request("POST", "/api/v1/device/heartbeat", body, self.authorization)

    def run_commands(self, client: HttpClient, outcome="succeeded", output="done") -> list:
        """Fetch the pending commands and report each one's result; returns the commands run."""
        commands = client.request("GET", "/api/v1/device/commands", headers=self.authorization).body["commands"]
        for command in commands:
            result = {"status": outcome, "output": f"{command['name']}: {output}"}
            client.request("POST", f"/api/v1/device/commands/{command['id']}/result", result, self.authorization)
        return commands

    def apply_configuration(self, client: HttpClient) -> int:
        """Fetch the desired configuration, 'apply' it, and report its version in a heartbeat."""
        desired = client.request("GET", "/api/v1/device/config", headers=self.authorization).body
        self.heartbeat(client, config_version=desired["version"])
        return desired["version"]

    @staticmethod
    def _pause(response, deadline):
        if time.monotonic() > deadline:
            raise ActivationFailed("timeout", "the operation did not finish in time")
        time.sleep(float(response.headers.get("retry-after", "1")))


@dataclass
class SimulationResult:
    activated: int = 0
    failures: dict = field(default_factory=dict)
    latencies: list = field(default_factory=list)
    elapsed: float = 0.0

    @property
    def rate(self):
        return self.activated / self.elapsed if self.elapsed else 0.0

    def percentile(self, q):
        if len(self.latencies) < 2:
            return self.latencies[0] if self.latencies else 0.0
        return statistics.quantiles(self.latencies, n=100, method="inclusive")[q - 1]


def simulate(base_url, units, *, concurrency=8, heartbeats=1, wait=10) -> SimulationResult:
    """Activate every unit over HTTP with `concurrency` parallel devices, then send `heartbeats` heartbeats each.

    A unit's latency runs from its first POST until its first heartbeat is accepted: the key is usable.
    """
    client = HttpClient(base_url)
    result = SimulationResult()
    lock = threading.Lock()

    def run(unit):
        device = SimulatedDevice(unit)
        started = time.monotonic()
        try:
            device.activate(client, wait=wait)
            for number in range(heartbeats):
                response = device.heartbeat(client, {"uptime": number})
                if response.status != 200:
                    raise ActivationFailed(f"heartbeat_{response.status}", response.body)
                if number == 0:
                    latency = time.monotonic() - started
        except (ActivationFailed, OSError, ValueError) as failure:
            code = getattr(failure, "code", type(failure).__name__)
            with lock:
                result.failures[code] = result.failures.get(code, 0) + 1
            return
        with lock:
            result.activated += 1
            result.latencies.append(latency if heartbeats else time.monotonic() - started)

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        list(pool.map(run, units))
    result.elapsed = time.monotonic() - started
    return result
