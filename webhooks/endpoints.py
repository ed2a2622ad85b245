"""The rules of an organization's webhook endpoints: add, change, remove, roll the secret, test,
resend; each one function, called by the page (and any other caller) alike. Who may (owners and
admins) is the caller's check, as for every rule of the portal."""

import uuid
from datetime import timedelta

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from accounts.audit import record_audit
from accounts.models import AuditEntry, Membership, Role
from portal.links import portal_origin

from .delivery import ring_doorbells
from .models import PING, Delivery, Endpoint, Event, EventName
from .outbox import record_event
from .secrets import checked_secret, encrypt_secret, generate_secret
from .targets import check_url

EVENT_RETENTION = timedelta(days=30)
RECENT_DELIVERIES = 50


def _events(events):
    """`events` in EventName's order, without repeats or unknown names."""
    return [event for event in EventName.values if event in set(events)]


def add_endpoint(organization, *, url, events, secret="", actor):
    """Add an endpoint of `organization` at `url` (refused with RefusedTarget if it can never be a
    target) for `events`, with `secret` (InvalidSecret unless it follows the rule) or a generated
    one. Returns (endpoint, secret): the secret is shown this once. Recorded in the audit log."""
    check_url(url)
    secret = checked_secret(secret) if secret else generate_secret()
    code = uuid.uuid4()
    with transaction.atomic():
        endpoint = Endpoint.objects.create(
            code=code,
            organization=organization,
            url=url,
            events=_events(events),
            secret_encrypted=encrypt_secret(secret, code),
            created_by=actor,
        )
        record_audit(
            organization_id=organization.pk,
            actor=actor,
            action=AuditEntry.Action.WEBHOOK_ADDED,
            target=url,
            details={"events": endpoint.events},
        )
    return endpoint, secret


def change_endpoint(endpoint, *, events, enabled, actor):
    """Change what `endpoint` is sent and whether it is enabled; enabling it again starts its
    three days of failures afresh. Recorded in the audit log when something changed."""
    with transaction.atomic():
        locked = Endpoint.objects.select_for_update().get(pk=endpoint.pk)
        before = {"events": locked.events, "enabled": locked.enabled}
        locked.events = _events(events)
        if enabled and not locked.enabled:
            locked.failing_since = None
            locked.disabled_reason = ""
        elif not enabled and locked.enabled:
            locked.disabled_reason = "Disabled by a member."
        locked.enabled = enabled
        after = {"events": locked.events, "enabled": locked.enabled}
        if after != before:
            locked.save(update_fields=["events", "enabled", "failing_since", "disabled_reason"])
            record_audit(
                organization_id=locked.organization_id,
                actor=actor,
                action=AuditEntry.Action.WEBHOOK_CHANGED,
                target=locked.url,
                details={"from": before, "to": after},
            )
    if locked.enabled:
        transaction.on_commit(lambda: ring_doorbells([locked.pk]))
    return locked


def roll_secret(endpoint, *, actor):
    """Give `endpoint` a new generated secret, used from the next delivery on; returns it (shown
    this once). Recorded in the audit log (without the secret)."""
    secret = generate_secret()
    with transaction.atomic():
        locked = Endpoint.objects.select_for_update().get(pk=endpoint.pk)
        locked.secret_encrypted = encrypt_secret(secret, locked.code)
        locked.save(update_fields=["secret_encrypted"])
        record_audit(
            organization_id=locked.organization_id,
            actor=actor,
            action=AuditEntry.Action.WEBHOOK_CHANGED,
            target=locked.url,
            details={"secret": "rolled"},
        )
    return secret


def remove_endpoint(endpoint, *, actor):
    """Delete `endpoint` and its deliveries. Recorded in the audit log."""
    with transaction.atomic():
        record_audit(
            organization_id=endpoint.organization_id,
            actor=actor,
            action=AuditEntry.Action.WEBHOOK_REMOVED,
            target=endpoint.url,
        )
        Endpoint.objects.filter(pk=endpoint.pk).delete()


def send_ping(endpoint, *, actor):
    """Send `endpoint` (enabled) a `ping` event, whatever it subscribes to: what the owner checks
    their receiver and its signature check with. Returns the Event (None for a disabled endpoint)."""
    data = {"endpoint": str(endpoint.code), "sent_by": actor.email if actor else None}
    with transaction.atomic():
        return record_event(endpoint.organization_id, PING, data, endpoints=[endpoint])


def resend_delivery(delivery):
    """A new delivery of `delivery`'s event to its endpoint, due now: the same event, the same id,
    so the receiver can tell it from a new event. Returns it."""
    with transaction.atomic():
        again = Delivery.objects.create(event_id=delivery.event_id, endpoint_id=delivery.endpoint_id)
        transaction.on_commit(lambda: ring_doorbells([delivery.endpoint_id]))
    return again


def recent_deliveries(organization):
    """The organization's latest deliveries, newest first, with their event and endpoint."""
    return Delivery.objects.filter(endpoint__organization=organization).select_related("event", "endpoint")[
        :RECENT_DELIVERIES
    ]


def notify_disabled(endpoint_id):
    """E-mail the owners and admins of the organization of disabled endpoint `endpoint_id`, once
    per disabling (the task may be delivered twice); returns how many were written to."""
    with transaction.atomic():
        endpoint = (
            Endpoint.objects.select_for_update(of=("self",))
            .select_related("organization")
            .filter(pk=endpoint_id, enabled=False, disabled_notice_sent_at__isnull=True)
            .first()
        )
        if endpoint is None:
            return 0
        recipients = list(
            Membership.objects.filter(organization_id=endpoint.organization_id, role__in=[Role.OWNER, Role.ADMIN])
            .order_by("user__email")
            .values_list("user__email", flat=True)
        )
        origin = portal_origin()
        context = {
            "endpoint": endpoint,
            "organization": endpoint.organization,
            "site_name": settings.SITE_NAME,
            "page_url": origin + reverse("webhooks", args=[endpoint.organization.code]) if origin else "",
        }
        # Sent under the row's lock, and marked sent in the same transaction: a failed send is
        # retried by the task and marks nothing.
        send_mail(
            subject=f"A webhook of {endpoint.organization.name} was disabled",
            message=render_to_string("webhooks/disabled_email.txt", context),
            from_email=None,
            recipient_list=recipients,
        )
        Endpoint.objects.filter(pk=endpoint.pk).update(disabled_notice_sent_at=timezone.now())
    return len(recipients)


def purge_old_events(now=None):
    """Delete events older than EVENT_RETENTION with no delivery still pending; returns how many."""
    now = now or timezone.now()
    old = Event.objects.filter(occurred_at__lt=now - EVENT_RETENTION).exclude(
        deliveries__status=Delivery.Status.PENDING
    )
    deleted, _ = old.delete()
    return deleted
