"""Webhook deliveries to a real local receiver: the signature, retries, redirects, resend, the
endpoint disabled after three days of failures, and the secret at rest."""

import hashlib
import hmac
import json
from datetime import timedelta

import pytest
from cryptography.exceptions import InvalidTag
from django.core import mail
from django.utils import timezone

from accounts.models import AuditEntry, Role
from devices.actions import move_device
from webhooks import delivery
from webhooks.delivery import deliver_round, wake_due_endpoints
from webhooks.endpoints import notify_disabled, purge_old_events, resend_delivery
from webhooks.models import Delivery, Endpoint, Event
from webhooks.secrets import decrypt_secret

from .factories import ClaimedDeviceFactory, MembershipFactory, SpaceFactory, webhook_endpoint
from .webhook_receiver import Receiver


@pytest.fixture(autouse=True)
def _private_targets_allowed(settings):
    # The receivers listen on 127.0.0.1; the refusals are tested in test_webhooks_targets.py.
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = True


@pytest.fixture
def receiver():
    with Receiver() as running:
        yield running


@pytest.fixture
def device(space):
    return ClaimedDeviceFactory(space=space, name="Lobby screen")


def _moved(device, to="Hall"):
    """Move `device` to a new space `to` of its organization: one device.moved event."""
    return move_device(device, space=SpaceFactory(organization=device.organization, name=to), actor=None)


def test_a_receiver_verifies_the_signature_of_the_exact_raw_body_with_the_secret(organization, device, receiver):
    endpoint, secret = webhook_endpoint(organization, receiver.url())
    _moved(device)

    assert deliver_round(endpoint.pk) == 1

    [request] = receiver.requests
    expected = "sha256=" + hmac.new(secret.encode(), request.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(request.headers["X-Portal-Signature"], expected)
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["X-Portal-Event"] == "device.moved"
    payload = json.loads(request.body)
    assert set(payload) == {"id", "event", "occurred_at", "data"}
    assert payload["event"] == "device.moved"
    assert payload["data"]["id"] == str(device.code)
    assert payload["data"]["space"]["name"] == "Hall"
    delivered = Delivery.objects.get()
    assert request.headers["X-Portal-Delivery"] == str(delivered.code)
    assert (delivered.status, delivered.attempts, delivered.last_status_code) == (Delivery.Status.SUCCEEDED, 1, 200)
    assert delivered.response_ms is not None
    assert delivered.delivered_at is not None


def test_a_signature_made_with_another_secret_does_not_verify(organization, device, receiver):
    endpoint, _ = webhook_endpoint(organization, receiver.url())
    _moved(device)
    deliver_round(endpoint.pk)

    [request] = receiver.requests
    forged = (
        "sha256=" + hmac.new(b"whsec_not-the-secret-of-this-endpoint-0000", request.body, hashlib.sha256).hexdigest()
    )
    assert request.headers["X-Portal-Signature"] != forged


def test_a_500_is_retried_later_with_a_growing_backoff_until_it_succeeds(organization, device):
    answers = iter([500, 500, 200])
    with Receiver(lambda path: (next(answers), {}, 0)) as receiver:
        endpoint, _ = webhook_endpoint(organization, receiver.url())
        _moved(device)
        delays = []
        for _ in range(2):
            before = timezone.now()
            deliver_round(endpoint.pk)
            pending = Delivery.objects.get()
            assert pending.status == Delivery.Status.PENDING
            assert pending.last_status_code == 500
            assert pending.last_error == "HTTP 500."
            delays.append((pending.next_attempt_at - before).total_seconds())
            # Nothing is sent before the retry is due...
            assert deliver_round(endpoint.pk) == 0
            # ...and when it is, it goes.
            Delivery.objects.update(next_attempt_at=timezone.now())
        deliver_round(endpoint.pk)

    assert 0.75 * 30 <= delays[0] <= 1.25 * 30 + 1
    assert 0.75 * 60 <= delays[1] <= 1.25 * 60 + 1
    delivered = Delivery.objects.get()
    assert (delivered.status, delivered.attempts) == (Delivery.Status.SUCCEEDED, 3)
    assert len(receiver.requests) == 3
    assert Endpoint.objects.get().failing_since is None


@pytest.mark.parametrize(
    "slow_receiver",
    [
        lambda: Receiver(lambda path: (200, {}, 2.0)),
        # Each byte comes well within any read timeout: only a deadline on the whole send ends it.
        lambda: Receiver(trickle_seconds=6.0),
    ],
    ids=["answers late", "trickles its answer"],
)
def test_a_send_past_its_deadline_times_out_and_is_retried(organization, device, monkeypatch, slow_receiver):
    monkeypatch.setattr(delivery, "TOTAL_TIMEOUT", 1.0)
    with slow_receiver() as receiver:
        endpoint, _ = webhook_endpoint(organization, receiver.url())
        _moved(device)
        deliver_round(endpoint.pk)

    pending = Delivery.objects.get()
    assert (pending.status, pending.attempts, pending.last_error) == (Delivery.Status.PENDING, 1, "Timed out.")
    assert pending.next_attempt_at > timezone.now()
    assert Endpoint.objects.get().failing_since is not None


def test_deliveries_stop_being_retried_24_hours_after_the_event(organization, device):
    with Receiver(lambda path: (503, {}, 0)) as receiver:
        endpoint, _ = webhook_endpoint(organization, receiver.url())
        _moved(device)
        Delivery.objects.update(created_at=timezone.now() - timedelta(hours=24))
        deliver_round(endpoint.pk)

    failed = Delivery.objects.get()
    assert (failed.status, failed.next_attempt_at, failed.last_status_code) == (Delivery.Status.FAILED, None, 503)


def test_a_redirect_is_not_followed_even_to_a_receiver_that_would_answer(organization, device):
    with Receiver() as elsewhere, Receiver(lambda path: (302, {"Location": elsewhere.url("/x")}, 0)) as receiver:
        endpoint, _ = webhook_endpoint(organization, receiver.url())
        _moved(device)
        deliver_round(endpoint.pk)

        assert len(receiver.requests) == 1
        assert elsewhere.requests == []
    pending = Delivery.objects.get()
    assert pending.status == Delivery.Status.PENDING
    assert (pending.last_status_code, pending.last_error) == (302, "Redirect not followed (HTTP 302).")


def test_a_duplicate_task_does_not_send_a_delivered_event_again(organization, device, receiver):
    endpoint, _ = webhook_endpoint(organization, receiver.url())
    _moved(device)

    assert deliver_round(endpoint.pk) == 1
    assert deliver_round(endpoint.pk) == 0
    assert len(receiver.requests) == 1


def test_a_task_finding_the_endpoint_leased_by_another_sends_nothing(organization, device, receiver):
    endpoint, _ = webhook_endpoint(organization, receiver.url())
    _moved(device)
    Endpoint.objects.update(sending_until=timezone.now() + timedelta(seconds=30))

    assert deliver_round(endpoint.pk) == 0
    assert receiver.requests == []
    # The beat leaves it alone while the lease lives, and rings once it has expired.
    assert wake_due_endpoints() == 0
    Endpoint.objects.update(sending_until=timezone.now() - timedelta(seconds=1))
    assert wake_due_endpoints() == 1


def test_resend_delivers_the_same_event_with_the_same_id_again(organization, device, receiver):
    endpoint, _ = webhook_endpoint(organization, receiver.url())
    _moved(device)
    deliver_round(endpoint.pk)

    again = resend_delivery(Delivery.objects.get())
    deliver_round(endpoint.pk)

    first, second = receiver.requests
    assert first.body == second.body
    assert json.loads(second.body)["id"] == str(Event.objects.get().id)
    assert second.headers["X-Portal-Delivery"] == str(again.code) != first.headers["X-Portal-Delivery"]
    assert Delivery.objects.filter(status=Delivery.Status.SUCCEEDED).count() == 2


def test_an_endpoint_failing_for_three_days_is_disabled_audited_and_its_owners_and_admins_told(
    organization, owner, admin_member, operator, device, django_capture_on_commit_callbacks
):
    with Receiver(lambda path: (500, {}, 0)) as receiver:
        endpoint, _ = webhook_endpoint(organization, receiver.url())
        _moved(device)
        Endpoint.objects.update(failing_since=timezone.now() - timedelta(days=3, minutes=1))
        with django_capture_on_commit_callbacks(execute=True):
            deliver_round(endpoint.pk)

    endpoint.refresh_from_db()
    assert not endpoint.enabled
    assert endpoint.disabled_reason == "No delivery succeeded for 3 days."
    entry = AuditEntry.objects.get(action=AuditEntry.Action.WEBHOOK_DISABLED)
    assert (entry.organization_id, entry.actor, entry.target) == (organization.pk, None, endpoint.url)
    [message] = mail.outbox
    assert sorted(message.to) == sorted([owner.email, admin_member.email])
    assert endpoint.url in message.body
    assert f"/o/{organization.code}/webhooks/" in message.body
    # A disabled endpoint is sent nothing more, even when the beat runs.
    assert wake_due_endpoints() == 0
    # The e-mail task delivered a second time (a worker died before acknowledging it) tells nobody twice.
    assert notify_disabled(endpoint.pk) == 0
    assert len(mail.outbox) == 1


def test_an_endpoint_failing_for_less_than_three_days_stays_enabled(organization, device):
    with Receiver(lambda path: (500, {}, 0)) as receiver:
        endpoint, _ = webhook_endpoint(organization, receiver.url())
        _moved(device)
        Endpoint.objects.update(failing_since=timezone.now() - timedelta(days=2, hours=23))
        deliver_round(endpoint.pk)

    assert Endpoint.objects.get().enabled
    assert not AuditEntry.objects.filter(action=AuditEntry.Action.WEBHOOK_DISABLED).exists()


def test_one_organizations_endpoint_is_never_sent_another_organizations_events(organization, device, receiver):
    other = MembershipFactory(role=Role.OWNER).organization
    theirs, _ = webhook_endpoint(other, receiver.url("/theirs"))
    ours, _ = webhook_endpoint(organization, receiver.url("/ours"))
    _moved(device)

    deliver_round(theirs.pk)
    deliver_round(ours.pk)

    assert [request.path for request in receiver.requests] == ["/ours"]


def test_the_secret_is_kept_encrypted_and_only_decrypts_for_its_own_endpoint(organization, receiver):
    endpoint, secret = webhook_endpoint(organization, receiver.url())
    other, _ = webhook_endpoint(organization, receiver.url("/other"))

    stored = bytes(Endpoint.objects.get(pk=endpoint.pk).secret_encrypted)
    assert secret.encode() not in stored
    assert decrypt_secret(stored, endpoint.code) == secret
    with pytest.raises(InvalidTag):
        decrypt_secret(stored, other.code)


def test_events_past_the_retention_are_purged_unless_a_delivery_is_still_pending(organization, device, receiver):
    endpoint, _ = webhook_endpoint(organization, receiver.url())
    _moved(device)
    deliver_round(endpoint.pk)
    _moved(device, to="Stage")
    Event.objects.update(occurred_at=timezone.now() - timedelta(days=31))

    assert purge_old_events() == 2  # the delivered event and its delivery

    [kept] = Event.objects.all()
    assert kept.deliveries.get().status == Delivery.Status.PENDING


@pytest.mark.django_db(transaction=True)
def test_the_attempt_is_counted_and_backed_off_before_the_request_is_sent(organization, device):
    # What a worker killed in the middle of a send (or stopped by its time limit) leaves behind.
    seen_by_the_receiver = []

    def answer(path):
        seen_by_the_receiver.append(Delivery.objects.values("attempts", "next_attempt_at").get())
        return 200, {}, 0

    with Receiver(answer) as receiver:
        endpoint, _ = webhook_endpoint(organization, receiver.url())
        _moved(device)
        before = timezone.now()
        deliver_round(endpoint.pk)

    [during] = seen_by_the_receiver
    assert during["attempts"] == 1
    assert during["next_attempt_at"] >= before + timedelta(seconds=0.75 * delivery.BACKOFF_BASE)
    assert Delivery.objects.get().status == Delivery.Status.SUCCEEDED


def test_a_receiver_that_refuses_the_connection_is_told_apart_from_one_that_times_out(organization, device):
    with Receiver() as receiver:
        url = receiver.url()
    endpoint, _ = webhook_endpoint(organization, url)  # nothing listens there any more
    _moved(device)
    deliver_round(endpoint.pk)
    assert Delivery.objects.get().last_error == "Could not connect."
