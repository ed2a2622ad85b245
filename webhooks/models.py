import uuid

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.utils import timezone


class EventName(models.TextChoices):
    """What an endpoint may subscribe to; `ping` is the page's test event, sent to one endpoint only."""

    DEVICE_CLAIMED = "device.claimed", "A device was claimed"
    DEVICE_RELEASED = "device.released", "A device was released"
    DEVICE_MOVED = "device.moved", "A device moved to another space"
    DEVICE_OFFLINE = "device.offline", "A device went offline"
    DEVICE_ONLINE = "device.online", "A device came back online"
    COMMAND_FINISHED = "command.finished", "A command finished"
    CONFIG_APPLIED = "config.applied", "A device applied a configuration"


PING = "ping"


def all_events():
    return list(EventName.values)


class Endpoint(models.Model):
    """Where an organization's events are POSTed, signed with the endpoint's secret.

    The secret is kept encrypted (AES-GCM, webhooks/secrets.py), not hashed: signing needs it.
    `sending_until`/`sender` are the lease of the one task sending to it at a time, and
    `doorbell_rung_at` when a task was last sent for it (webhooks/delivery.py).
    """

    code = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    organization = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="webhooks")
    url = models.URLField(max_length=2000)
    events = models.JSONField(default=all_events)
    secret_encrypted = models.BinaryField()
    enabled = models.BooleanField(default=True)
    disabled_reason = models.CharField(max_length=200, blank=True)
    # When the owners were told of the last disabling: a second delivery of the task tells nobody twice.
    disabled_notice_sent_at = models.DateTimeField(null=True, blank=True)
    # The first failure since the last success: three days of it disable the endpoint.
    failing_since = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    sending_until = models.DateTimeField(null=True, blank=True)
    sender = models.UUIDField(null=True, blank=True)
    doorbell_rung_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["organization"], condition=models.Q(enabled=True), name="webhook_enabled")]

    def __str__(self):
        return self.url

    def subscribes_to(self, event):
        return event == PING or event in self.events

    def event_labels(self):
        return [label for value, label in EventName.choices if value in self.events]


class Event(models.Model):
    """The outbox: one event of an organization, written in the transaction of the change it tells of.

    Its `id` is the payload's: a resend carries the same one, so receivers can tell repeats apart.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="+")
    event = models.CharField(max_length=32)
    occurred_at = models.DateTimeField(default=timezone.now)
    data = models.JSONField(encoder=DjangoJSONEncoder)

    class Meta:
        indexes = [models.Index(fields=["occurred_at"], name="webhook_event_time")]

    def __str__(self):
        return f"{self.event} {self.id}"

    def payload(self):
        """What is POSTed: times written as in `data` (DjangoJSONEncoder: milliseconds, UTC as Z)."""
        occurred_at = DjangoJSONEncoder().default(self.occurred_at)
        return {"id": str(self.id), "event": self.event, "occurred_at": occurred_at, "data": self.data}


class Delivery(models.Model):
    """One event to one endpoint: pending until the endpoint answers 2xx (succeeded) or the retries
    run out (failed). The database, not the broker, says what is due (`next_attempt_at`)."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SUCCEEDED = "succeeded", "Delivered"
        FAILED = "failed", "Failed"

    code = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="deliveries")
    endpoint = models.ForeignKey(Endpoint, on_delete=models.CASCADE, related_name="deliveries")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    created_at = models.DateTimeField(default=timezone.now)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True, default=timezone.now)
    last_status_code = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=300, blank=True)
    response_ms = models.PositiveIntegerField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(
                fields=["endpoint", "next_attempt_at"], condition=models.Q(status="pending"), name="webhook_due"
            ),
            models.Index(fields=["endpoint", "-created_at"], name="webhook_delivery_recent"),
        ]

    def __str__(self):
        return f"{self.event} to {self.endpoint} ({self.get_status_display()})"
