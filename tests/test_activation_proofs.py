"""Activation bound to possession: the claim code, attestation by the unit's own key, and one
answer to the device for every failed proof (the precise reason is for vendor staff)."""

import json
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.core.cache import cache
from django.urls import reverse
from django.utils import timezone

from devices.actions import allow_reactivation
from devices.activation import NOT_APPROVED_MESSAGE, process_activations
from devices.activation_queue import delete_finished_activations
from devices.models import ActivationOperation, Device, UsedAttestationSignature
from devices.simulator import SimulatedDevice
from vendors.attestation import b64url_decode, b64url_encode, request_message, sign
from vendors.claim_codes import hash_claim_code

from .factories import (
    PASSWORD,
    ApprovedIdentityFactory,
    ClaimedDeviceFactory,
    ProductionBatchFactory,
    VendorStaffFactory,
    attested_unit,
)

pytestmark = pytest.mark.django_db

ACTIVATIONS = "/api/v1/activations"
CODE = "82948164301"
OTHER_CODE = "55512345672"
Reason = ActivationOperation.Reason


@pytest.fixture(autouse=True)
def fresh_rate_limits(settings):
    settings.ACTIVATION_RATE_PER_ADDRESS = 1000
    settings.ACTIVATION_RATE_PER_IDENTITY = 1000
    cache.clear()


def coded_identity(**fields):
    """An approved unit of a model that requires a claim code; its code is CODE."""
    fields.setdefault("device_model__claim_code", True)
    return ApprovedIdentityFactory(claim_code_hash=hash_claim_code(CODE), **fields)


def unit_of(identity, **extra):
    model = identity.device_model
    return {"vendor": model.vendor.slug, "model": model.slug, "identifiers": identity.identifiers, **extra}


def post(client, body, **extra):
    return client.post(ACTIVATIONS, json.dumps(body), content_type="application/json", **extra)


def finished(client, capture, body, **extra):
    """POST `body`, let the task run once the request commits, and return the finished operation's answer."""
    with capture(execute=True):
        accepted = post(client, body, **extra)
    assert accepted.status_code == 202, accepted.content
    return client.get(accepted["Location"]).json()


def reason_of(answer):
    return ActivationOperation.objects.get(pk=answer["operation_id"]).refusal_reason


def refused_alike(answer, reason):
    """The answer is the one every failed proof gets, and the operation keeps `reason`."""
    assert answer["status"] == "failed"
    assert answer["error"] == {"code": "not_approved", "message": NOT_APPROVED_MESSAGE}
    assert reason_of(answer) == reason
    return True


def signed_request(device, signed_at_text, unit_key=None):
    """The device's request with its attestation signed for `signed_at_text` as written."""
    body = device.activation_request()
    key = unit_key or Ed25519PrivateKey.from_private_bytes(b64url_decode(device.unit["unit_private_key"]))
    message = request_message(body["vendor"], body["model"], body["identifiers"], body["public_key"], signed_at_text)
    body["attestation"] |= {"signed_at": signed_at_text, "signature": sign(key, message)}
    return body


# The claim code.


@pytest.mark.parametrize("typed", [CODE, "8294-816-4301", " 8294 816 4301 "])
def test_a_unit_of_a_code_model_activates_with_its_claim_code_however_typed(
    client, django_capture_on_commit_callbacks, typed
):
    device = SimulatedDevice(unit_of(coded_identity(), claim_code=typed))
    answer = finished(client, django_capture_on_commit_callbacks, device.activation_request())
    assert answer["status"] == "assigned"


@pytest.mark.parametrize(
    ("claim_code", "reason"),
    [
        (None, Reason.CLAIM_CODE_MISSING),
        (OTHER_CODE, Reason.CLAIM_CODE_WRONG),
        ("82948164302", Reason.CLAIM_CODE_WRONG),
        ("1234", Reason.CLAIM_CODE_WRONG),
        ("not a code", Reason.CLAIM_CODE_WRONG),
    ],
    ids=["missing", "another unit's", "check digit fails", "too short", "not digits"],
)
def test_a_unit_of_a_code_model_is_not_activated_without_its_claim_code(
    client, django_capture_on_commit_callbacks, claim_code, reason
):
    identity = coded_identity()
    extra = {} if claim_code is None else {"claim_code": claim_code}
    answer = finished(
        client, django_capture_on_commit_callbacks, SimulatedDevice(unit_of(identity, **extra)).activation_request()
    )
    assert refused_alike(answer, reason)
    assert not Device.objects.filter(identity=identity, activated_at__isnull=False).exists()


def test_a_stranger_who_read_the_serial_number_cannot_activate_a_claimed_unit_before_it_is_powered_on(
    client, django_capture_on_commit_callbacks
):
    claimed = ClaimedDeviceFactory(identity=coded_identity())
    for guess, reason in [({}, Reason.CLAIM_CODE_MISSING), ({"claim_code": OTHER_CODE}, Reason.CLAIM_CODE_WRONG)]:
        stranger = SimulatedDevice(unit_of(claimed.identity, **guess)).activation_request()
        assert refused_alike(finished(client, django_capture_on_commit_callbacks, stranger), reason)
    claimed.refresh_from_db()
    assert claimed.activated_at is None
    assert claimed.key_hash == ""

    real = SimulatedDevice(unit_of(claimed.identity, claim_code=CODE))
    answer = finished(client, django_capture_on_commit_callbacks, real.activation_request())
    assert answer["status"] == "assigned"
    assert answer["device"] == {"id": str(claimed.code)}
    real.finish_activation(answer)
    heartbeat = client.post(
        "/api/v1/device/heartbeat", {"metrics": {}}, content_type="application/json", headers=real.authorization
    )
    assert heartbeat.status_code == 200


def test_already_activated_is_said_only_to_a_request_that_proved_the_unit(client, django_capture_on_commit_callbacks):
    identity = coded_identity()
    first = SimulatedDevice(unit_of(identity, claim_code=CODE))
    assert finished(client, django_capture_on_commit_callbacks, first.activation_request())["status"] == "assigned"

    without_code = SimulatedDevice(unit_of(identity)).activation_request()
    assert refused_alike(finished(client, django_capture_on_commit_callbacks, without_code), Reason.CLAIM_CODE_MISSING)
    with_code = SimulatedDevice(unit_of(identity, claim_code=CODE)).activation_request()
    assert finished(client, django_capture_on_commit_callbacks, with_code)["error"]["code"] == "already_activated"


def test_the_operation_keeps_only_a_keyed_hash_of_the_claim_code(client, django_capture_on_commit_callbacks):
    device = SimulatedDevice(unit_of(coded_identity(), claim_code="8294-816-4301"))
    answer = finished(client, django_capture_on_commit_callbacks, device.activation_request())
    stored = ActivationOperation.objects.filter(pk=answer["operation_id"]).values().get()
    assert stored["claim_code_hash"] == hash_claim_code(CODE)
    dumped = json.dumps(stored, default=str)
    assert CODE not in dumped
    assert "8294-816-4301" not in dumped


# Attestation by the unit's own key.


@pytest.fixture
def batch():
    return ProductionBatchFactory()


def attested_device(batch, /, **certified):
    return SimulatedDevice(attested_unit(batch, ApprovedIdentityFactory(device_model=batch.device_model), **certified))


def test_a_unit_that_signs_its_request_with_its_certified_key_activates(
    client, django_capture_on_commit_callbacks, batch
):
    device = attested_device(batch)
    answer = finished(client, django_capture_on_commit_callbacks, device.activation_request())
    assert answer["status"] == "assigned"
    assert UsedAttestationSignature.objects.count() == 1


def _without_attestation(device, batch):
    return {k: v for k, v in device.activation_request().items() if k != "attestation"}


def _from_batch(name):
    def change(device, batch):
        return device.activation_request() | {
            "attestation": device.activation_request()["attestation"] | {"batch": name}
        }

    return change


def _revoked_batch(device, batch):
    batch.revoke()
    return device.activation_request()


def _signed_by_another_key(device, batch):
    return signed_request(device, device.activation_request()["attestation"]["signed_at"], Ed25519PrivateKey.generate())


def _signed_at(delta):
    def change(device, batch):
        return device.activation_request(signed_at=timezone.now() + delta)

    return change


@pytest.mark.parametrize(
    ("certified", "change", "reason"),
    [
        ({}, _without_attestation, Reason.ATTESTATION_MISSING),
        ({}, _from_batch("no-such-batch"), Reason.UNKNOWN_BATCH),
        ({}, _revoked_batch, Reason.BATCH_REVOKED),
        (
            {"identifiers": {"serial_number": "SN-OTHER", "mac_address": "02:00:00:00:00:FF"}},
            None,
            Reason.CERTIFICATE_INVALID,
        ),
        ({"unit_public_key": b64url_encode(bytes(32))}, None, Reason.CERTIFICATE_INVALID),
        ({"batch": "another-batch"}, None, Reason.CERTIFICATE_INVALID),
        ({"model": "another-model"}, None, Reason.CERTIFICATE_INVALID),
        ({}, _signed_by_another_key, Reason.SIGNATURE_INVALID),
        ({}, _signed_at(-timedelta(minutes=6)), Reason.SIGNATURE_STALE),
        ({}, _signed_at(timedelta(minutes=6)), Reason.SIGNATURE_STALE),
        ({}, lambda device, batch: signed_request(device, "2026-02-30T12:00:00Z"), Reason.SIGNATURE_STALE),
    ],
    ids=[
        "missing",
        "unknown batch",
        "revoked batch",
        "another unit's certificate",
        "certificate of another unit key",
        "certificate of another batch",
        "certificate of another model",
        "signed by another key",
        "signed 6 minutes ago",
        "signed 6 minutes ahead",
        "signed on no such day",
    ],
)
def test_a_bad_or_stale_attestation_is_refused_alike_with_its_reason_kept(
    client, django_capture_on_commit_callbacks, batch, certified, change, reason
):
    device = attested_device(batch, **certified)
    body = change(device, batch) if change else device.activation_request()
    assert refused_alike(finished(client, django_capture_on_commit_callbacks, body), reason)
    assert not Device.objects.filter(activated_at__isnull=False).exists()
    assert not UsedAttestationSignature.objects.exists(), "a failed attempt burns no signature"


def test_a_request_signed_four_minutes_off_the_servers_clock_activates(
    client, django_capture_on_commit_callbacks, batch
):
    device = attested_device(batch)
    body = device.activation_request(signed_at=timezone.now() - timedelta(minutes=4))
    assert finished(client, django_capture_on_commit_callbacks, body)["status"] == "assigned"


def test_one_captured_request_cannot_activate_another_public_key_and_does_not_burn_the_real_one(
    client, django_capture_on_commit_callbacks, batch
):
    device = attested_device(batch)
    captured = device.activation_request()
    thief = SimulatedDevice({})
    stolen = captured | {"public_key": thief.activation_request()["public_key"]}
    assert refused_alike(finished(client, django_capture_on_commit_callbacks, stolen), Reason.SIGNATURE_INVALID)

    assert finished(client, django_capture_on_commit_callbacks, captured)["status"] == "assigned"


def test_a_replayed_request_is_refused_even_when_the_unit_may_activate_again(
    client, django_capture_on_commit_callbacks, batch
):
    device = attested_device(batch)
    body = device.activation_request()
    assert finished(client, django_capture_on_commit_callbacks, body)["status"] == "assigned"
    staff = VendorStaffFactory(vendor=batch.device_model.vendor).user
    allow_reactivation(Device.objects.get(), actor=staff, by_vendor_staff=True)

    assert refused_alike(finished(client, django_capture_on_commit_callbacks, body), Reason.SIGNATURE_REPLAYED)
    fresh = device.activation_request(signed_at=timezone.now() + timedelta(seconds=1))
    assert finished(client, django_capture_on_commit_callbacks, fresh)["status"] == "assigned"


def test_a_request_sent_twice_into_one_batch_activates_once(client, batch):
    body = attested_device(batch).activation_request()
    for _ in range(2):
        assert post(client, body).status_code == 202
    first, second = sorted(process_activations(), key=lambda operation: operation.created_at)
    assert (first.status, second.refusal_reason) == ("assigned", Reason.SIGNATURE_REPLAYED)


def test_used_signatures_are_forgotten_after_a_day():
    now = timezone.now()
    UsedAttestationSignature.objects.create(signature_hash="a" * 64, used_at=now - timedelta(days=1, minutes=1))
    UsedAttestationSignature.objects.create(signature_hash="b" * 64, used_at=now - timedelta(hours=23))
    delete_finished_activations(now=now)
    assert list(UsedAttestationSignature.objects.values_list("signature_hash", flat=True)) == ["b" * 64]


def test_an_operation_that_waited_more_than_a_day_is_stale(client, batch):
    assert post(client, attested_device(batch).activation_request()).status_code == 202
    ActivationOperation.objects.update(created_at=timezone.now() - timedelta(days=1))
    (operation,) = process_activations()
    assert operation.refusal_reason == Reason.SIGNATURE_STALE


def test_an_operation_queued_in_the_old_attestation_format_fails_and_does_not_stop_the_others(client, batch):
    old, new = attested_device(batch), attested_device(batch)
    for device in (old, new):
        assert post(client, device.activation_request()).status_code == 202
    # Queued before the upgrade: the batch key's signature of the identifiers, nothing of a unit key.
    old_format = {"batch": batch.name, "signature": b64url_encode(bytes(64))}
    ActivationOperation.objects.filter(identifiers=old.unit["identifiers"]).update(attestation=old_format)
    finished = {operation.identifiers["serial_number"]: operation for operation in process_activations()}
    refused = finished[old.unit["identifiers"]["serial_number"]]
    assert (refused.status, refused.error_code, refused.refusal_reason) == (
        "failed",
        "not_approved",
        Reason.ATTESTATION_MISSING,
    )
    assert finished[new.unit["identifiers"]["serial_number"]].status == "assigned"


# One answer for every failed proof.


def test_every_failed_proof_gets_the_same_answer_and_each_keeps_its_own_reason(
    client, django_capture_on_commit_callbacks, batch
):
    hub = ApprovedIdentityFactory()
    revoked = ApprovedIdentityFactory(device_model=hub.device_model, status="revoked")
    coded, claimed = coded_identity(), ClaimedDeviceFactory(identity=coded_identity()).identity
    replayed = attested_device(batch).activation_request()
    assert finished(client, django_capture_on_commit_callbacks, replayed)["status"] == "assigned"
    attested = attested_device(batch)
    cases = {
        Reason.NOT_ON_LIST: unit_of(hub, identifiers=hub.identifiers | {"serial_number": "SN-NOT-SHIPPED"}),
        Reason.WRONG_IDENTIFIER_FIELDS: unit_of(hub, identifiers={"serial_number": hub.identifier_1}),
        Reason.INVALID_IDENTIFIER: unit_of(hub, identifiers=hub.identifiers | {"mac_address": "not a mac"}),
        Reason.REVOKED: unit_of(revoked),
        Reason.CLAIM_CODE_MISSING: unit_of(claimed),
        Reason.CLAIM_CODE_WRONG: unit_of(coded, claim_code=OTHER_CODE),
    }
    bodies = {reason: SimulatedDevice(unit).activation_request() for reason, unit in cases.items()}
    bodies[Reason.ATTESTATION_MISSING] = _without_attestation(attested_device(batch), batch)
    bodies[Reason.UNKNOWN_BATCH] = _from_batch("no-such-batch")(attested_device(batch), batch)
    bodies[Reason.CERTIFICATE_INVALID] = attested_device(
        batch, unit_public_key=b64url_encode(bytes(32))
    ).activation_request()
    bodies[Reason.SIGNATURE_INVALID] = _signed_by_another_key(attested, batch)
    bodies[Reason.SIGNATURE_STALE] = _signed_at(-timedelta(hours=1))(attested_device(batch), batch)
    bodies[Reason.SIGNATURE_REPLAYED] = replayed
    other_batch = ProductionBatchFactory(device_model=batch.device_model)
    bodies[Reason.BATCH_REVOKED] = attested_device(other_batch).activation_request()
    other_batch.revoke()

    accepted = {reason: post(client, body) for reason, body in bodies.items()}
    assert {response.status_code for response in accepted.values()} == {202}
    assert len({json.dumps({**r.json(), "operation_id": None}) for r in accepted.values()}) == 1
    process_activations()
    answers = {reason: client.get(response["Location"]).json() for reason, response in accepted.items()}
    assert {reason: reason_of(answer) for reason, answer in answers.items()} == {reason: reason for reason in answers}
    assert set(answers) == set(Reason), "every reason a proof can fail for is among the cases"
    bodies_but_the_id = {json.dumps({**answer, "operation_id": None}, sort_keys=True) for answer in answers.values()}
    assert len(bodies_but_the_id) == 1
    assert json.loads(bodies_but_the_id.pop())["error"] == {"code": "not_approved", "message": NOT_APPROVED_MESSAGE}


@pytest.mark.django_db(transaction=True)
def test_with_wait_every_failed_proof_is_answered_200_with_the_same_body(client):
    hub, coded = ApprovedIdentityFactory(), coded_identity()
    answers = [
        client.post(f"{ACTIVATIONS}?wait=5", json.dumps(body), content_type="application/json")
        for body in (
            SimulatedDevice(
                unit_of(hub, identifiers=hub.identifiers | {"serial_number": "SN-NOPE"})
            ).activation_request(),
            SimulatedDevice(unit_of(coded, claim_code=OTHER_CODE)).activation_request(),
        )
    ]
    assert [answer.status_code for answer in answers] == [200, 200]
    assert answers[0].json()["error"] == answers[1].json()["error"]


# Vendor staff see the reason; the key's provenance is kept.


def test_vendor_staff_see_why_their_units_failed_to_activate_and_nothing_of_other_vendors(
    client, django_capture_on_commit_callbacks
):
    mine, theirs = coded_identity(), coded_identity()
    for identity in (mine, theirs):
        finished(
            client,
            django_capture_on_commit_callbacks,
            SimulatedDevice(unit_of(identity, claim_code=OTHER_CODE)).activation_request(),
        )
    staff = VendorStaffFactory(vendor=mine.device_model.vendor)
    assert client.login(email=staff.user.email, password=PASSWORD)
    url = reverse("admin:devices_activationoperation_changelist")
    listing = client.get(url, {"refusal_reason": Reason.CLAIM_CODE_WRONG}).content.decode()
    assert "Wrong claim code" in listing
    assert mine.device_model.slug in listing
    assert theirs.device_model.slug not in listing
    operation = ActivationOperation.objects.get(model_slug=mine.device_model.slug)
    page = client.get(reverse("admin:devices_activationoperation_change", args=[operation.pk])).content.decode()
    assert "Wrong claim code" in page
    assert operation.claim_code_hash not in page


def test_the_address_the_key_was_issued_to_is_kept_on_the_operation_and_the_device(
    client, django_capture_on_commit_callbacks, settings
):
    settings.TRUSTED_PROXY_COUNT = 1
    device = SimulatedDevice(unit_of(ApprovedIdentityFactory()))
    answer = finished(
        client,
        django_capture_on_commit_callbacks,
        device.activation_request(),
        REMOTE_ADDR="10.0.0.1",
        HTTP_X_FORWARDED_FOR="203.0.113.9, 198.51.100.7",
    )
    assert ActivationOperation.objects.get(pk=answer["operation_id"]).client_address == "198.51.100.7"
    assert Device.objects.get(code=answer["device"]["id"]).key_issued_from == "198.51.100.7"


def test_an_address_that_is_no_ip_address_is_not_kept(client, django_capture_on_commit_callbacks, settings):
    settings.TRUSTED_PROXY_COUNT = 1
    device = SimulatedDevice(unit_of(ApprovedIdentityFactory()))
    answer = finished(
        client, django_capture_on_commit_callbacks, device.activation_request(), HTTP_X_FORWARDED_FOR="not-an-address"
    )
    assert answer["status"] == "assigned"
    assert Device.objects.get(code=answer["device"]["id"]).key_issued_from is None
