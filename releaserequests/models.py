"""A release request: an organization that proved it holds a unit another organization has claimed
asks that organization to release it. Neither side learns who the other is (rules.py)."""

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone

# The longest message a requester may write to the holder (plain text, shown as text).
MESSAGE_MAX_LENGTH = 500


def unit_description(device):
    """The unit as its requester typed it (model and identifiers), never as its holder named it."""
    return f"{device.device_model.name} {device.identity}"


class ReleaseRequestQuerySet(models.QuerySet):
    def open(self, now=None):
        """Requests still waiting for an answer: open and not yet expired (the sweep marks them
        expired, rules.expire_requests; until it has run, this condition already leaves them out)."""
        return self.filter(status=ReleaseRequest.Status.OPEN, expires_at__gt=now or timezone.now())

    def reserving(self, device, now=None):
        """The released requests whose requester alone may still claim `device` (see rules.CLAIM_WINDOW)."""
        return self.reserving_any([device.pk], now)

    def reserving_any(self, device_ids, now=None):
        """The same for every device of `device_ids`, in one query."""
        return self.filter(
            device_id__in=device_ids, status=ReleaseRequest.Status.RELEASED, reserved_until__gt=now or timezone.now()
        )


class ReleaseRequest(models.Model):
    class Status(models.TextChoices):
        OPEN = "open", "Waiting for the owner"
        RELEASED = "released", "Released"
        DECLINED = "declined", "Declined"
        CLOSED = "closed", "Closed: the device was released otherwise"
        EXPIRED = "expired", "Expired without an answer"

    code = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    device = models.ForeignKey("devices.Device", on_delete=models.CASCADE, related_name="release_requests")
    # The organization that held the device when it was asked; only its owners and admins see the request.
    holding_organization = models.ForeignKey(
        "accounts.Organization", on_delete=models.CASCADE, related_name="release_requests_received"
    )
    requesting_organization = models.ForeignKey(
        "accounts.Organization", on_delete=models.CASCADE, related_name="release_requests_made"
    )
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
    message = models.TextField(max_length=MESSAGE_MAX_LENGTH, blank=True)
    # The keyed hash of the claim code the requester proved the unit with (empty for models
    # without codes): what lets them claim the released unit without typing it again.
    claim_code_hash = models.CharField(max_length=64, blank=True, editable=False)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OPEN)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    answered_at = models.DateTimeField(null=True, blank=True)
    # After a release in answer to this request: until then only the requester may claim the unit.
    reserved_until = models.DateTimeField(null=True, blank=True)
    # When the holder's owners and admins were e-mailed the request, and its requester the answer
    # (every answer is final): what keeps each e-mail to one however often its task runs.
    holder_told_at = models.DateTimeField(null=True, blank=True)
    requester_told_at = models.DateTimeField(null=True, blank=True)

    objects = ReleaseRequestQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["device", "requesting_organization"],
                condition=models.Q(status="open"),
                name="release_request_one_open_per_requester",
            ),
            models.CheckConstraint(
                condition=~models.Q(holding_organization=models.F("requesting_organization")),
                name="release_request_not_to_oneself",
            ),
        ]
        indexes = [models.Index(fields=["status", "expires_at"], name="release_request_status_expiry")]

    def __str__(self):
        return f"Release request {self.code}"

    def current_status(self, now=None):
        """The status as the requester reads it: an open request past its expiry is expired."""
        if self.status == self.Status.OPEN and self.expires_at <= (now or timezone.now()):
            return self.Status.EXPIRED
        return self.Status(self.status)

    def unit(self):
        """What the requester's pages and e-mails call the unit (see unit_description)."""
        return unit_description(self.device)

    def may_claim_now(self, now=None):
        """Whether the requester alone may claim the released unit now (and nobody has yet)."""
        return (
            self.status == self.Status.RELEASED
            and self.reserved_until is not None
            and self.reserved_until > (now or timezone.now())
            and self.device.status != self.device.Status.CLAIMED
        )
