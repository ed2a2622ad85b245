"""Sending deliveries: one task at a time per endpoint, in short rounds, retried from the database.

An endpoint's due deliveries are sent by whichever task holds its lease (`Endpoint.sending_until`),
oldest first, for one round (ROUND_DELIVERIES or ROUND_SECONDS); the task then rings the endpoint's
doorbell again, sending a new task to the back of the webhooks queue. So a slow or dead endpoint
holds at most one worker at a time and gives it up every round: the other endpoints' tasks, one
queued per endpoint at most (`doorbell_rung_at`), are served in between. A round that meets a
failure ends there; the beat (wake_due_endpoints) tries the endpoint again with its next due delivery.

A delivery is final only once the endpoint answered 2xx (or its retries ran out), recorded in the
database: a killed worker's lease expires and the delivery it was sending is sent again (receivers
tell repeats apart by the event's id).
"""

import contextlib
import hashlib
import hmac
import http.client
import json
import logging
import random
import socket
import ssl
import threading
import time
import uuid
from datetime import timedelta

import urllib3
from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from accounts.audit import record_audit
from accounts.models import AuditEntry

from .models import Delivery, Endpoint
from .secrets import decrypt_secret
from .targets import RefusedTarget, resolve_target

logger = logging.getLogger(__name__)

ROUND_DELIVERIES = 20
ROUND_SECONDS = 2.0
CONNECT_TIMEOUT = 3.0
TOTAL_TIMEOUT = 10.0
# Longer than a round and one send's timeout: a lease that outlives its task (a killed worker) expires.
LEASE = timedelta(seconds=60)
# A doorbell rung this long ago without a task starting is taken as lost and rung again.
DOORBELL_STALE = timedelta(seconds=60)
BACKOFF_BASE = 30.0
BACKOFF_CAP = 3600.0
RETRY_FOR = timedelta(hours=24)
DISABLE_AFTER = timedelta(days=3)
RESPONSE_LIMIT = 4096
ERROR_LENGTH = Delivery._meta.get_field("last_error").max_length


def signature(body: bytes, secret: str) -> str:
    """The X-Portal-Signature header of `body`: HMAC-SHA256 keyed with the secret's UTF-8 bytes."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def body_of(event) -> bytes:
    return json.dumps(event.payload(), separators=(",", ":"), ensure_ascii=False).encode()


def next_attempt_at(delivery, now):
    """When a delivery that just failed its `attempts`-th time is tried again: exponential backoff
    from BACKOFF_BASE, capped at BACKOFF_CAP, with ±25% jitter so that the retries of one outage do
    not all come back at once; None once that is more than RETRY_FOR after the delivery was created."""
    delay = min(BACKOFF_BASE * 2 ** (delivery.attempts - 1), BACKOFF_CAP) * random.uniform(0.75, 1.25)  # noqa: S311
    at = now + timedelta(seconds=delay)
    return None if at > delivery.created_at + RETRY_FOR else at


def ring_doorbells(endpoint_ids):
    """Send a delivery task for each of `endpoint_ids` that has none queued (or whose last one was
    sent longer than DOORBELL_STALE ago, so presumably lost). A broker that refuses the task is
    logged and left to the beat: the deliveries are in the database."""
    from . import tasks

    for endpoint_id in endpoint_ids:
        now = timezone.now()
        rung = (
            Endpoint.objects.filter(pk=endpoint_id, enabled=True)
            .filter(Q(doorbell_rung_at__isnull=True) | Q(doorbell_rung_at__lt=now - DOORBELL_STALE))
            .update(doorbell_rung_at=now)
        )
        if not rung:
            continue
        try:
            tasks.deliver_to_endpoint.delay(endpoint_id)
        except Exception:
            logger.warning("webhook task for endpoint %s not sent; the beat will retry", endpoint_id, exc_info=True)
            Endpoint.objects.filter(pk=endpoint_id, doorbell_rung_at=now).update(doorbell_rung_at=None)


def wake_due_endpoints(now=None):
    """Ring the doorbell of every enabled endpoint with a due delivery and no live lease: what
    picks up deliveries whose task was lost, and retries. Returns how many endpoints were due."""
    now = now or timezone.now()
    due = Delivery.objects.filter(endpoint=OuterRef("pk"), status=Delivery.Status.PENDING, next_attempt_at__lte=now)
    endpoint_ids = list(
        Endpoint.objects.filter(enabled=True)
        .filter(Q(sending_until__isnull=True) | Q(sending_until__lt=now))
        .filter(Exists(due))
        .values_list("pk", flat=True)
    )
    ring_doorbells(endpoint_ids)
    return len(endpoint_ids)


def deliver_round(endpoint_id):
    """One round of the endpoint's due deliveries, if no other task holds its lease; returns how
    many were sent. Idempotent: only pending deliveries are sent, by one lease holder at a time."""
    Endpoint.objects.filter(pk=endpoint_id).update(doorbell_rung_at=None)
    token = uuid.uuid4()
    if not _take_lease(endpoint_id, token):
        return 0
    sent, failed = 0, False
    try:
        endpoint = Endpoint.objects.filter(pk=endpoint_id).first()
        if endpoint is None:  # removed meanwhile
            return 0
        secret = decrypt_secret(endpoint.secret_encrypted, endpoint.code)
        started = time.monotonic()
        while sent < ROUND_DELIVERIES and time.monotonic() - started < ROUND_SECONDS:
            delivery = _next_due(endpoint_id)
            if delivery is None:
                break
            failed = not _attempt(delivery, endpoint, secret)
            sent += 1
            if failed or not _take_lease(endpoint_id, token, renew=True):
                break
    finally:
        Endpoint.objects.filter(pk=endpoint_id, sender=token).update(sending_until=None, sender=None)
    if not failed and _next_due(endpoint_id) is not None:
        ring_doorbells([endpoint_id])
    return sent


def _take_lease(endpoint_id, token, *, renew=False):
    now = timezone.now()
    held = Q(sender=token) if renew else Q(sending_until__isnull=True) | Q(sending_until__lt=now)
    rows = Endpoint.objects.filter(held, pk=endpoint_id, enabled=True)
    return rows.update(sending_until=now + LEASE, sender=token) == 1


def _next_due(endpoint_id):
    return (
        Delivery.objects.filter(
            endpoint_id=endpoint_id, status=Delivery.Status.PENDING, next_attempt_at__lte=timezone.now()
        )
        .select_related("event")
        .order_by("next_attempt_at", "id")
        .first()
    )


def _attempt(delivery, endpoint, secret):
    """POST the delivery once and record the outcome; returns whether it succeeded."""
    body = body_of(delivery.event)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": f"{settings.SITE_NAME} webhooks",
        "X-Portal-Event": delivery.event.event,
        "X-Portal-Delivery": str(delivery.code),
        "X-Portal-Signature": signature(body, secret),
    }
    # Counted and backed off before the request goes: a worker killed in the middle of a send (or
    # stopped by its time limit) leaves a delivery tried again later, not at once and forever.
    delivery.attempts += 1
    retry_at = next_attempt_at(delivery, timezone.now())
    Delivery.objects.filter(pk=delivery.pk, status=Delivery.Status.PENDING).update(
        attempts=delivery.attempts, next_attempt_at=retry_at or timezone.now() + RETRY_FOR
    )
    started = time.monotonic()
    status, error = _post(endpoint.url, body, headers)
    elapsed = round((time.monotonic() - started) * 1000)
    now = timezone.now()
    succeeded = status is not None and 200 <= status < 300
    if status is not None and error is None and not succeeded:
        error = f"Redirect not followed (HTTP {status})." if 300 <= status < 400 else f"HTTP {status}."
    record = {"last_status_code": status, "response_ms": elapsed}
    if succeeded:
        record |= {"status": Delivery.Status.SUCCEEDED, "delivered_at": now, "next_attempt_at": None, "last_error": ""}
    else:
        record |= {"last_error": (error or "")[:ERROR_LENGTH], "next_attempt_at": retry_at}
        if retry_at is None:
            record["status"] = Delivery.Status.FAILED
    Delivery.objects.filter(pk=delivery.pk, status=Delivery.Status.PENDING).update(**record)
    if succeeded:
        Endpoint.objects.filter(pk=endpoint.pk, failing_since__isnull=False).update(failing_since=None)
    else:
        Endpoint.objects.filter(pk=endpoint.pk, failing_since__isnull=True).update(failing_since=now)
        disable_if_failing(endpoint.pk, now)
    return succeeded


def _post(url, body, headers):
    """(status, error) of one POST of `body` to `url`, at the address checked now, with no
    redirect followed, at most RESPONSE_LIMIT bytes of the answer read, and TOTAL_TIMEOUT seconds
    for the whole send: a receiver that trickles its answer a byte at a time never trips a read
    timeout, so the connection is cut at the deadline."""
    try:
        target = resolve_target(url)
    except RefusedTarget as refusal:
        return None, refusal.message
    if target.scheme == "https":
        connection = urllib3.connection.HTTPSConnection(
            target.address,
            target.port,
            timeout=CONNECT_TIMEOUT,
            server_hostname=target.host,
            assert_hostname=target.host,
            cert_reqs="CERT_REQUIRED",
        )
    else:
        connection = urllib3.connection.HTTPConnection(target.address, target.port, timeout=CONNECT_TIMEOUT)
    cut = threading.Event()
    deadline = threading.Timer(TOTAL_TIMEOUT, _cut, args=(connection, cut))
    deadline.start()
    try:
        connection.connect()
        connection.sock.settimeout(TOTAL_TIMEOUT)
        connection.request(
            "POST", target.path, body=body, headers=headers | {"Host": target.host_header}, preload_content=False
        )
        response = connection.getresponse()
        response.read(RESPONSE_LIMIT)
        status, error = response.status, None
    except (OSError, http.client.HTTPException, urllib3.exceptions.HTTPError) as problem:
        status, error = None, _failure(problem)
    finally:
        deadline.cancel()
        connection.close()
    # A cut connection can still read as a whole answer (headers ended by the cut): not one.
    return (None, "Timed out.") if cut.is_set() else (status, error)


def _cut(connection, cut):
    # Shutting the socket down wakes the send's thread from its blocking read.
    cut.set()
    with contextlib.suppress(OSError, AttributeError):
        connection.sock.shutdown(socket.SHUT_RDWR)


def _failure(problem):
    """What a failed send tells the endpoint's owners."""
    # urllib3's NewConnectionError is also a TimeoutError of its: asked first.
    if isinstance(problem, urllib3.exceptions.NewConnectionError | ConnectionRefusedError):
        return "Could not connect."
    if isinstance(problem, TimeoutError | urllib3.exceptions.TimeoutError):
        return "Timed out."
    if isinstance(problem, ssl.SSLError | urllib3.exceptions.SSLError):
        return f"TLS failed: {problem}"
    return f"Failed: {problem}"


def disable_if_failing(endpoint_id, now=None):
    """Disable the endpoint if no delivery to it succeeded for DISABLE_AFTER since it began failing;
    recorded in the audit log, and its organization's owners and admins told by e-mail. Returns
    whether it was disabled now."""
    from . import tasks

    now = now or timezone.now()
    with transaction.atomic():
        endpoint = Endpoint.objects.select_for_update().filter(pk=endpoint_id).first()
        if endpoint is None or not endpoint.enabled or endpoint.failing_since is None:
            return False
        if endpoint.failing_since > now - DISABLE_AFTER:
            return False
        endpoint.enabled = False
        endpoint.disabled_reason = f"No delivery succeeded for {DISABLE_AFTER.days} days."
        endpoint.disabled_notice_sent_at = None
        endpoint.save(update_fields=["enabled", "disabled_reason", "disabled_notice_sent_at"])
        record_audit(
            organization_id=endpoint.organization_id,
            actor=None,
            action=AuditEntry.Action.WEBHOOK_DISABLED,
            target=endpoint.url,
            details={"failing_since": endpoint.failing_since.isoformat(), "reason": endpoint.disabled_reason},
        )
        transaction.on_commit(lambda: tasks.send_disabled_email.delay(endpoint_id))
    return True
