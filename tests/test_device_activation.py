"""The device activation API: the protocol of docs/device-api.md, every status and error code."""

import hashlib
import json
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.utils import timezone

from devices import activation_queue
from devices.actions import allow_reactivation
from devices.activation import process_activations
from devices.activation_queue import delete_finished_activations, doorbell_key, process_waiting_activations
from devices.heartbeat_intake import write_buffered_heartbeats
from devices.models import ActivationOperation, Device, DeviceEvent
from devices.simulator import SimulatedDevice
from portal.redis import redis_client
from vendors.attestation import b64url_encode

from .factories import ApprovedIdentityFactory, ClaimedDeviceFactory

ACTIVATIONS = "/api/v1/activations"
HEARTBEAT = "/api/v1/device/heartbeat"


@pytest.fixture(autouse=True)
def fresh_rate_limits():
    """Rate-limit counters live in the shared cache; each test starts from zero."""
    cache.clear()


def unit_of(identity, **extra):
    return {
        "vendor": identity.device_model.vendor.slug,
        "model": identity.device_model.slug,
        "identifiers": identity.identifiers,
        **extra,
    }


def post(client, body, query="", **headers):
    payload = body if isinstance(body, bytes) else json.dumps(body).encode()
    return client.post(ACTIVATIONS + query, payload, content_type="application/json", headers=headers)


def activate(client, device, capture):
    """POST the device's activation, let the task run (after commit), and return the finished operation body."""
    with capture(execute=True):
        accepted = post(client, device.activation_request())
    assert accepted.status_code == 202, accepted.content
    return client.get(accepted["Location"]).json()


def heartbeat(client, token, metrics=None):
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return client.post(HEARTBEAT, {"metrics": metrics or {}}, content_type="application/json", headers=headers)


def key_of(device):
    return b64url_encode(device.device_key)


# Accepted, assigned, and the key both sides derive.


@pytest.mark.django_db
def test_activation_is_accepted_with_location_and_retry_after(client, django_capture_on_commit_callbacks):
    device = SimulatedDevice(unit_of(ApprovedIdentityFactory()))
    with django_capture_on_commit_callbacks() as callbacks:
        response = post(client, device.activation_request())
    assert response.status_code == 202
    operation = ActivationOperation.objects.get()
    assert response.json() == {"operation_id": str(operation.pk), "status": "assigning"}
    assert response["Location"] == f"/api/v1/activations/{operation.pk}"
    assert response["Retry-After"] == "1"
    assert not response.cookies, "the device API is sessionless: no session or CSRF cookie"
    assert len(callbacks) == 1, "the task is sent only once the operation row is committed"
    polled = client.get(response["Location"])
    assert polled.json() == {"operation_id": str(operation.pk), "status": "assigning"}
    assert polled["Retry-After"] == "1"


@pytest.mark.django_db
def test_device_derives_the_server_key_and_authenticates_a_heartbeat(client, django_capture_on_commit_callbacks):
    identity = ApprovedIdentityFactory()
    device = SimulatedDevice(unit_of(identity))
    operation = activate(client, device, django_capture_on_commit_callbacks)
    assert operation["status"] == "assigned"
    device.finish_activation(operation)

    stored = Device.objects.get(identity=identity)
    assert operation["device"] == {"id": str(stored.code)}
    assert stored.status == Device.Status.REGISTERED
    assert stored.activated_at is not None
    assert stored.key_hash == hashlib.sha256(device.device_key).hexdigest()
    assert list(stored.events.values_list("kind", flat=True)) == [DeviceEvent.Kind.ACTIVATED]

    response = heartbeat(client, key_of(device), {"temperature": 21.5, "uptime": 10})
    assert response.status_code == 200
    assert response.json()["device"] == {"id": str(stored.code), "status": "registered"}
    assert "server_time" in response.json()
    write_buffered_heartbeats()
    assert Device.objects.get(pk=stored.pk).last_seen_at > stored.last_seen_at


@pytest.mark.django_db
def test_the_server_stores_neither_the_key_nor_its_private_key(client, django_capture_on_commit_callbacks):
    device = SimulatedDevice(unit_of(ApprovedIdentityFactory()))
    device.finish_activation(activate(client, device, django_capture_on_commit_callbacks))
    operation = ActivationOperation.objects.values().get()
    stored = json.dumps({**operation, **Device.objects.values().get()}, default=str)
    assert key_of(device) not in stored
    assert device.device_key.hex() not in stored
    assert set(operation) >= {"server_public_key", "device_public_key"}


@pytest.mark.django_db
def test_a_claimed_device_stays_claimed_when_it_first_activates(client, django_capture_on_commit_callbacks):
    claimed = ClaimedDeviceFactory()
    device = SimulatedDevice(unit_of(claimed.identity))
    operation = activate(client, device, django_capture_on_commit_callbacks)
    assert operation["device"] == {"id": str(claimed.code)}
    claimed.refresh_from_db()
    assert claimed.status == Device.Status.CLAIMED
    assert claimed.activated_at is not None


@pytest.mark.django_db
def test_the_activation_answer_does_not_say_whether_the_unit_is_claimed(client, django_capture_on_commit_callbacks):
    claimed, unclaimed = ClaimedDeviceFactory().identity, ApprovedIdentityFactory()
    answers = [
        activate(client, SimulatedDevice(unit_of(identity)), django_capture_on_commit_callbacks)
        for identity in (claimed, unclaimed)
    ]

    def without_ids(answer):
        return answer | {"operation_id": "", "server_public_key": "", "device": answer["device"] | {"id": ""}}

    assert without_ids(answers[0]) == without_ids(answers[1])
    assert [sorted(answer["device"]) for answer in answers] == [["id"], ["id"]]


@pytest.mark.django_db(transaction=True)
def test_wait_answers_200_with_the_finished_operation(client):
    device = SimulatedDevice(unit_of(ApprovedIdentityFactory()))
    response = post(client, device.activation_request(), "?wait=5")
    assert response.status_code == 200
    assert response.json()["status"] == "assigned"
    device.finish_activation(response.json())
    assert heartbeat(client, key_of(device)).status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize("wait", ["0", "11", "-1", "abc", "nan", "inf"])
def test_wait_outside_0_to_10_seconds_is_an_invalid_request(client, wait):
    device = SimulatedDevice(unit_of(ApprovedIdentityFactory()))
    response = post(client, device.activation_request(), f"?wait={wait}")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_request"
    assert "wait" in response.json()["error"]["fields"]
    assert not ActivationOperation.objects.exists()


@pytest.mark.django_db
def test_unknown_operation_id_gives_404(client):
    for operation_id in ["0b7c6f52-9b8a-4d7e-8f51-1f0c4e5e2a11", "not-a-uuid"]:
        response = client.get(f"{ACTIVATIONS}/{operation_id}")
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"


# Refusals: the operation fails with a code.


def _failed_with(client, capture, body):
    with capture(execute=True):
        accepted = post(client, body)
    assert accepted.status_code == 202, accepted.content
    operation = client.get(accepted["Location"]).json()
    assert operation["status"] == "failed"
    assert set(operation["error"]) == {"code", "message"}
    return operation["error"]["code"]


def _refusal_reason():
    return ActivationOperation.objects.get(status="failed").refusal_reason


def _fresh_public_key():
    return SimulatedDevice({}).activation_request()["public_key"]


@pytest.mark.django_db
def test_unknown_model_fails_with_unknown_model(client, django_capture_on_commit_callbacks):
    identity = ApprovedIdentityFactory()
    body = unit_of(identity, model="no-such-model", public_key=_fresh_public_key())
    assert _failed_with(client, django_capture_on_commit_callbacks, body) == "unknown_model"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("identifiers", "reason"),
    [
        ({"serial_number": "SN-999999", "mac_address": "02:00:00:00:00:01"}, "not_on_list"),
        ({"serial_number": "SN-000001"}, "wrong_identifier_fields"),
        ({"serial_number": "??", "mac_address": "not a mac"}, "invalid_identifier"),
        ({"cloud_id": "ABCDEFGHJKMNPQRT"}, "wrong_identifier_fields"),
    ],
    ids=["unknown unit", "missing identifier", "malformed values", "other method's identifier"],
)
def test_identifiers_not_on_the_approved_list_fail_with_not_approved(
    client, django_capture_on_commit_callbacks, identifiers, reason
):
    identity = ApprovedIdentityFactory()
    body = unit_of(identity, identifiers=identifiers, public_key=_fresh_public_key())
    assert _failed_with(client, django_capture_on_commit_callbacks, body) == "not_approved"
    assert _refusal_reason() == reason
    assert not Device.objects.exists()


@pytest.mark.django_db
def test_identifiers_are_normalized_as_in_the_claim_wizard(client, django_capture_on_commit_callbacks):
    identity = ApprovedIdentityFactory()
    typed = {
        "serial_number": f"  {identity.identifier_1.lower()} ",
        "mac_address": identity.identifier_2.replace(":", "-").lower(),
    }
    device = SimulatedDevice(unit_of(identity, identifiers=typed))
    assert activate(client, device, django_capture_on_commit_callbacks)["status"] == "assigned"


@pytest.mark.django_db
def test_a_withdrawn_unit_fails_as_not_approved_with_the_reason_kept_for_the_vendor(
    client, django_capture_on_commit_callbacks
):
    identity = ApprovedIdentityFactory(status="revoked")
    body = unit_of(identity, public_key=_fresh_public_key())
    assert _failed_with(client, django_capture_on_commit_callbacks, body) == "not_approved"
    assert _refusal_reason() == "revoked"


@pytest.mark.django_db
def test_a_low_order_public_key_fails_with_invalid_public_key(client, django_capture_on_commit_callbacks):
    identity = ApprovedIdentityFactory()
    body = unit_of(identity, public_key=b64url_encode(bytes(32)))
    assert _failed_with(client, django_capture_on_commit_callbacks, body) == "invalid_public_key"
    assert not Device.objects.filter(activated_at__isnull=False).exists()


# Activating twice, and the re-activation window.


@pytest.mark.django_db
def test_a_unit_that_activated_cannot_activate_again(client, django_capture_on_commit_callbacks):
    identity = ApprovedIdentityFactory()
    first = SimulatedDevice(unit_of(identity))
    first.finish_activation(activate(client, first, django_capture_on_commit_callbacks))
    second = SimulatedDevice(unit_of(identity))
    operation = activate(client, second, django_capture_on_commit_callbacks)
    assert operation["error"]["code"] == "already_activated"
    assert heartbeat(client, key_of(first)).status_code == 200, "the unit's key is unchanged"


@pytest.mark.django_db
def test_reactivation_window_replaces_the_key_and_the_old_one_stops_working(
    client, django_capture_on_commit_callbacks, owner, space
):
    claimed = ClaimedDeviceFactory(space=space)
    before = SimulatedDevice(unit_of(claimed.identity))
    before.finish_activation(activate(client, before, django_capture_on_commit_callbacks))
    allow_reactivation(claimed, actor=owner)

    after = SimulatedDevice(unit_of(claimed.identity))
    after.finish_activation(activate(client, after, django_capture_on_commit_callbacks))
    assert after.device_id == before.device_id
    assert heartbeat(client, key_of(before)).status_code == 401
    assert heartbeat(client, key_of(after)).status_code == 200
    claimed.refresh_from_db()
    assert claimed.reactivation_allowed_until is None, "the window closes with the re-activation"
    assert claimed.events.filter(kind=DeviceEvent.Kind.ACTIVATED).count() == 2

    third = SimulatedDevice(unit_of(claimed.identity))
    assert activate(client, third, django_capture_on_commit_callbacks)["error"]["code"] == "already_activated"


@pytest.mark.django_db
def test_an_expired_reactivation_window_refuses_with_already_activated(client, django_capture_on_commit_callbacks):
    identity = ApprovedIdentityFactory()
    first = SimulatedDevice(unit_of(identity))
    first.finish_activation(activate(client, first, django_capture_on_commit_callbacks))
    Device.objects.filter(identity=identity).update(reactivation_allowed_until=timezone.now() - timedelta(seconds=1))
    again = SimulatedDevice(unit_of(identity))
    assert activate(client, again, django_capture_on_commit_callbacks)["error"]["code"] == "already_activated"


# The task: batches, idempotent, a doorbell rather than a message per request; finished operations are cleaned up.


@pytest.mark.django_db
def test_processing_an_operation_twice_leaves_one_key_and_one_event(client, django_capture_on_commit_callbacks):
    identity = ApprovedIdentityFactory()
    device = SimulatedDevice(unit_of(identity))
    device.finish_activation(activate(client, device, django_capture_on_commit_callbacks))
    operation = ActivationOperation.objects.get()
    key_hash = Device.objects.get(identity=identity).key_hash

    assert process_activations([operation.pk]) == []
    assert process_waiting_activations() == 0
    assert Device.objects.get(identity=identity).key_hash == key_hash
    assert DeviceEvent.objects.filter(kind=DeviceEvent.Kind.ACTIVATED).count() == 1
    assert process_activations(["0b7c6f52-9b8a-4d7e-8f51-1f0c4e5e2a11"]) == []


def accepted_without_processing(client, devices):
    """POST each device's activation; the doorbell's task is not run (its on_commit callback never fires)."""
    for device in devices:
        assert post(client, device.activation_request()).status_code == 202
    return ActivationOperation.objects.filter(status="assigning")


def operation_of(device):
    return ActivationOperation.objects.get(device_public_key=device.activation_request()["public_key"])


@pytest.mark.django_db
def test_the_task_processes_every_waiting_operation_in_batches(client, settings):
    settings.ACTIVATION_RATE_PER_ADDRESS = 1000
    devices = [SimulatedDevice(unit_of(ApprovedIdentityFactory())) for _ in range(7)]
    assert accepted_without_processing(client, devices).count() == 7

    assert len(process_activations(limit=3)) == 3
    assert process_waiting_activations() == 4
    assert set(ActivationOperation.objects.values_list("status", flat=True)) == {"assigned"}
    assert DeviceEvent.objects.filter(kind=DeviceEvent.Kind.ACTIVATED).count() == 7
    for device in devices:
        device.finish_activation(client.get(f"{ACTIVATIONS}/{operation_of(device).pk}").json())
        assert heartbeat(client, key_of(device)).status_code == 200


@pytest.mark.django_db
def test_a_unit_asking_twice_in_one_batch_activates_once(client):
    identity = ApprovedIdentityFactory()
    first, second = SimulatedDevice(unit_of(identity)), SimulatedDevice(unit_of(identity))
    accepted_without_processing(client, [first, second])

    finished = {operation.pk: operation for operation in process_activations()}
    assert [finished[operation_of(first).pk].status, finished[operation_of(second).pk].error_code] == [
        "assigned",
        "already_activated",
    ]
    assert DeviceEvent.objects.filter(kind=DeviceEvent.Kind.ACTIVATED).count() == 1


@pytest.mark.django_db
def test_a_drain_that_meets_a_backlog_asks_for_a_helper(client, settings, monkeypatch):
    """Tasks run in-process here, so the helper runs at once and takes what the first batch left."""
    settings.ACTIVATION_RATE_PER_ADDRESS = 1000
    monkeypatch.setattr(activation_queue, "BATCH_SIZE", 3)
    devices = [SimulatedDevice(unit_of(ApprovedIdentityFactory())) for _ in range(7)]
    accepted_without_processing(client, devices)

    assert process_waiting_activations() == 3, "the first batch; the helper finished the other four"
    assert ActivationOperation.objects.filter(status="assigned").count() == 7


@pytest.mark.django_db
def test_each_operation_of_a_mixed_batch_gets_its_own_answer(client, settings):
    settings.ACTIVATION_RATE_PER_ADDRESS = 1000
    hub, cloud = ApprovedIdentityFactory(), ApprovedIdentityFactory(device_model__cloud_id=True)
    revoked = ApprovedIdentityFactory(device_model=hub.device_model, status="revoked")
    unapproved = unit_of(hub) | {"identifiers": hub.identifiers | {"serial_number": "NOT-SHIPPED"}}
    devices = [
        SimulatedDevice(unit)
        for unit in (
            unit_of(hub),
            unit_of(cloud),
            unit_of(revoked),
            unapproved,
            unit_of(hub) | {"model": "no-such-model"},
            unit_of(hub),
        )
    ]
    accepted_without_processing(client, devices)

    finished = {operation.pk: operation for operation in process_activations()}
    answers = [
        (finished[operation_of(device).pk].status, finished[operation_of(device).pk].error_code) for device in devices
    ]
    assert answers == [
        ("assigned", ""),
        ("assigned", ""),
        ("failed", "not_approved"),
        ("failed", "not_approved"),
        ("failed", "unknown_model"),
        ("failed", "already_activated"),
    ]
    for device in devices[:2]:
        device.finish_activation(client.get(f"{ACTIVATIONS}/{operation_of(device).pk}").json())
        assert heartbeat(client, key_of(device)).status_code == 200
    assert Device.objects.filter(identity__in=[hub, cloud], activated_at__isnull=False).count() == 2
    assert DeviceEvent.objects.filter(kind=DeviceEvent.Kind.ACTIVATED).count() == 2


@pytest.mark.django_db
def test_one_broken_operation_does_not_hold_up_the_others(client, caplog):
    devices = [SimulatedDevice(unit_of(ApprovedIdentityFactory())) for _ in range(3)]
    accepted_without_processing(client, devices[:1])
    # Not a request the API would accept: processing it raises, which rolls its whole batch back.
    unit = devices[0].unit
    broken = ActivationOperation.objects.create(
        vendor_slug=unit["vendor"], model_slug=unit["model"], identifiers=5, device_public_key="x" * 43
    )
    accepted_without_processing(client, devices[1:])

    assert process_waiting_activations() == 3
    assert ActivationOperation.objects.get(pk=broken.pk).status == "assigning"
    assert ActivationOperation.objects.filter(status="assigned").count() == 3
    assert f"Activation {broken.pk} failed" in caplog.text


@pytest.mark.django_db
def test_the_doorbell_sends_no_task_while_one_is_on_its_way(client, django_capture_on_commit_callbacks):
    """Tasks run in-process here: a rung doorbell processes the operation before the request ends."""
    redis_client().set(doorbell_key(), 1)  # as if a task had been sent and not started yet
    early = SimulatedDevice(unit_of(ApprovedIdentityFactory()))
    with django_capture_on_commit_callbacks(execute=True):
        post(client, early.activation_request())
    assert ActivationOperation.objects.get().status == "assigning", "no second task for the same doorbell"

    assert process_waiting_activations() == 1, "the task on its way finds the operation"
    late = SimulatedDevice(unit_of(ApprovedIdentityFactory()))
    assert activate(client, late, django_capture_on_commit_callbacks)["status"] == "assigned", "the task cleared it"


@pytest.mark.django_db
def test_an_operation_committed_while_the_task_drains_is_found_by_its_last_look(client, monkeypatch):
    """The doorbell stays set while the task drains, so the requests meanwhile send no task; after
    clearing it the task looks once more."""
    late = SimulatedDevice(unit_of(ApprovedIdentityFactory()))
    clear_doorbell = activation_queue._clear_doorbell

    def a_request_commits_then_the_doorbell_clears():
        assert redis_client().exists(doorbell_key()), "still set at the end of the drain"
        accepted_without_processing(client, [late])
        clear_doorbell()

    monkeypatch.setattr(activation_queue, "_clear_doorbell", a_request_commits_then_the_doorbell_clears)
    redis_client().set(doorbell_key(), 1)
    accepted_without_processing(client, [SimulatedDevice(unit_of(ApprovedIdentityFactory()))])

    assert process_waiting_activations() == 2
    assert not redis_client().exists(doorbell_key())
    assert operation_of(late).status == "assigned"


@pytest.mark.django_db
def test_finished_operations_are_deleted_after_seven_days(client, django_capture_on_commit_callbacks):
    for _ in range(2):
        activate(client, SimulatedDevice(unit_of(ApprovedIdentityFactory())), django_capture_on_commit_callbacks)
    old, recent = ActivationOperation.objects.order_by("created_at")
    ActivationOperation.objects.filter(pk=old.pk).update(finished_at=timezone.now() - timedelta(days=7, minutes=1))
    with django_capture_on_commit_callbacks():
        post(client, SimulatedDevice(unit_of(ApprovedIdentityFactory())).activation_request())
    ActivationOperation.objects.filter(status="assigning").update(created_at=timezone.now() - timedelta(days=30))

    assert delete_finished_activations() == 1
    assert set(ActivationOperation.objects.values_list("status", flat=True)) == {"assigned", "assigning"}
    assert not ActivationOperation.objects.filter(pk=old.pk).exists()
    assert ActivationOperation.objects.filter(pk=recent.pk).exists()


# Device authentication.


@pytest.mark.django_db
def test_missing_wrong_or_revoked_keys_get_the_same_401(client, django_capture_on_commit_callbacks):
    identity = ApprovedIdentityFactory()
    device = SimulatedDevice(unit_of(identity))
    device.finish_activation(activate(client, device, django_capture_on_commit_callbacks))
    wrong = b64url_encode(bytes(32))
    answers = [
        heartbeat(client, None),
        heartbeat(client, wrong),
        heartbeat(client, "not base64!"),
        heartbeat(client, key_of(device)[:-2]),
        client.post(
            HEARTBEAT, {"metrics": {}}, content_type="application/json", headers={"Authorization": key_of(device)}
        ),
    ]
    identity.status = "revoked"
    identity.save()
    answers.append(heartbeat(client, key_of(device)))
    assert {response.status_code for response in answers} == {401}
    assert {response.content for response in answers} == {answers[0].content}
    assert answers[0]["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"metrics": {f"m{i}": i for i in range(33)}}, "metrics"),
        ({"metrics": {"temperature": "hot"}}, "metrics.temperature"),
        ({"metrics": {"on": True}}, "metrics.on"),
        ({"metrics": {"big": 10**400}}, "metrics.big"),
        ({"metrics": {"bad name!": 1}}, "metrics.bad name!"),
        ({"metrics": [1, 2]}, "metrics"),
        ({}, "metrics"),
        ({"metrics": {}, "extra": 1}, "extra"),
    ],
)
def test_malformed_heartbeats_get_invalid_request_naming_the_field(
    client, django_capture_on_commit_callbacks, body, field
):
    device = SimulatedDevice(unit_of(ApprovedIdentityFactory()))
    device.finish_activation(activate(client, device, django_capture_on_commit_callbacks))
    response = client.post(
        HEARTBEAT, json.dumps(body), content_type="application/json", headers=dict(device.authorization)
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_request"
    assert field in response.json()["error"]["fields"]


@pytest.mark.django_db
def test_a_heartbeat_with_a_nan_metric_is_refused(client, django_capture_on_commit_callbacks):
    device = SimulatedDevice(unit_of(ApprovedIdentityFactory()))
    device.finish_activation(activate(client, device, django_capture_on_commit_callbacks))
    response = client.post(
        HEARTBEAT, b'{"metrics": {"t": NaN}}', content_type="application/json", headers=dict(device.authorization)
    )
    assert response.status_code == 400


# Malformed activation requests, sizes and rate limits.


ATTESTATION = {
    "batch": "demo-batch-1",
    "unit_public_key": b64url_encode(bytes(32)),
    "certificate": b64url_encode(bytes(64)),
    "signed_at": "2026-12-01T12:00:00Z",
    "signature": b64url_encode(bytes(64)),
}


def _valid_body():
    return SimulatedDevice(unit_of(ApprovedIdentityFactory())).activation_request()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("change", "fields"),
    [
        (lambda body: b"not json", set()),
        (lambda body: b"[1, 2]", set()),
        (lambda body: b"\xff\xfe", set()),
        (lambda body: {k: v for k, v in body.items() if k != "vendor"}, {"vendor"}),
        (lambda body: {**body, "colour": "red"}, {"colour"}),
        (lambda body: {**body, "model": 7}, {"model"}),
        (lambda body: {**body, "public_key": "!!notbase64!!"}, {"public_key"}),
        (lambda body: {**body, "public_key": body["public_key"] + "="}, {"public_key"}),
        (lambda body: {**body, "public_key": b64url_encode(bytes(31))}, {"public_key"}),
        (lambda body: {**body, "identifiers": {}}, {"identifiers"}),
        (lambda body: {**body, "identifiers": {"serial_number": 5}}, {"identifiers.serial_number"}),
        (lambda body: {**body, "attestation": {**ATTESTATION, "batch": ""}}, {"attestation.batch"}),
        (
            lambda body: {**body, "attestation": {k: v for k, v in ATTESTATION.items() if k != "signature"}},
            {"attestation.signature"},
        ),
        (lambda body: {**body, "attestation": {**ATTESTATION, "signature": "a+b/"}}, {"attestation.signature"}),
        (lambda body: {**body, "attestation": {**ATTESTATION, "certificate": "AAAA"}}, {"attestation.certificate"}),
        (
            lambda body: {**body, "attestation": {**ATTESTATION, "unit_public_key": b64url_encode(bytes(31))}},
            {"attestation.unit_public_key"},
        ),
        (
            lambda body: {**body, "attestation": {**ATTESTATION, "signed_at": "2026-12-01 12:00:00"}},
            {"attestation.signed_at"},
        ),
        (
            lambda body: {**body, "attestation": {**ATTESTATION, "signed_at": "2026-12-01T12:00:00+00:00"}},
            {"attestation.signed_at"},
        ),
        (lambda body: {**body, "attestation": {**ATTESTATION, "colour": "red"}}, {"attestation.colour"}),
        (lambda body: {**body, "attestation": "signed"}, {"attestation"}),
        (lambda body: {**body, "claim_code": 82948164301}, {"claim_code"}),
        (lambda body: {**body, "claim_code": ""}, {"claim_code"}),
        (lambda body: {**body, "claim_code": "1" * 33}, {"claim_code"}),
    ],
    ids=[
        "not json",
        "not an object",
        "not utf-8",
        "missing field",
        "extra field",
        "wrong type",
        "bad base64",
        "padded base64",
        "31-byte key",
        "no identifiers",
        "identifier not a string",
        "empty batch name",
        "attestation without signature",
        "signature not base64url",
        "certificate too short",
        "31-byte unit key",
        "signed_at without T and Z",
        "signed_at with an offset",
        "unknown attestation field",
        "attestation not an object",
        "claim code not a string",
        "empty claim code",
        "claim code too long",
    ],
)
def test_malformed_activation_requests_get_400_naming_the_fields(client, change, fields):
    response = post(client, change(_valid_body()))
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_request"
    assert error["message"]
    assert set(error["fields"]) == fields
    assert not ActivationOperation.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("path", [ACTIVATIONS, HEARTBEAT])
def test_bodies_over_16_kb_get_413(client, path):
    body = json.dumps({**_valid_body(), "padding": "x" * 16 * 1024}).encode()
    response = client.post(path, body, content_type="application/json", headers={"Authorization": "Bearer x"})
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "too_large"
    assert not ActivationOperation.objects.exists()


@pytest.mark.django_db
def test_more_than_the_per_address_limit_gets_429_with_retry_after(client, settings):
    settings.ACTIVATION_RATE_PER_ADDRESS = 3
    statuses = [post(client, _valid_body()).status_code for _ in range(4)]
    assert statuses == [202, 202, 202, 429]
    limited = post(client, _valid_body())
    assert limited.json()["error"]["code"] == "rate_limited"
    assert 1 <= int(limited["Retry-After"]) <= 60
    other_address = client.post(
        ACTIVATIONS, json.dumps(_valid_body()), content_type="application/json", REMOTE_ADDR="10.0.0.9"
    )
    assert other_address.status_code == 202


@pytest.mark.django_db
def test_malformed_and_oversized_requests_count_against_the_address_limit(client, settings):
    settings.ACTIVATION_RATE_PER_ADDRESS = 3
    junk = client.post(ACTIVATIONS, "not json", content_type="application/json")
    too_large = client.post(ACTIVATIONS, "x" * 20_000, content_type="application/json")
    statuses = [junk.status_code, too_large.status_code, post(client, _valid_body()).status_code]
    assert statuses == [400, 413, 202]
    assert post(client, _valid_body()).status_code == 429


@pytest.mark.django_db
def test_more_than_five_requests_a_minute_for_one_identity_get_429(client):
    body = _valid_body()
    statuses = []
    for mac_spelling in [str.upper, str.lower, lambda mac: mac.replace(":", "-"), str.upper, str.upper, str.upper]:
        identifiers = {**body["identifiers"], "mac_address": mac_spelling(body["identifiers"]["mac_address"])}
        statuses.append(post(client, {**body, "identifiers": identifiers}).status_code)
    assert statuses == [202] * 5 + [429]
    assert post(client, _valid_body()).status_code == 202, "another unit is not limited"
