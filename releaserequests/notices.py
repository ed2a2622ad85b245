"""The e-mails of release requests: to the holder's owners and admins when a request arrives, to
the requester when it is answered. Each tells one side nothing about the other: the holder reads
the message and the date, the requester the unit as they typed it and the answer."""

import logging
from datetime import timedelta

from django.conf import settings
from django.core.mail import EmailMessage, mailers
from django.db import transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from accounts.models import Membership, Role
from portal.links import portal_origin

from .models import ReleaseRequest, unit_description

logger = logging.getLogger(__name__)

# Who of the holding organization hears of a request: those who may release or decline it.
ANSWERING_ROLES = (Role.OWNER, Role.ADMIN)
ANSWERED = (
    ReleaseRequest.Status.RELEASED,
    ReleaseRequest.Status.DECLINED,
    ReleaseRequest.Status.CLOSED,
    ReleaseRequest.Status.EXPIRED,
)
# An e-mail not sent this long after its request changed is one whose task the broker lost.
SWEEP_AFTER = timedelta(minutes=2)


def send_after_commit(task, release_request_id):
    """Send `task` (tell_holder or tell_requester) for `release_request_id` once the transaction
    commits. A broker that is down fails nothing: the change stands, and the sweep
    (tasks.sweep_requests, see untold) sends the e-mail later."""

    def send():
        try:
            task.apply_async((release_request_id,), retry=False)
        except Exception:
            logger.warning(
                "release request %s: e-mail task not sent; the sweep sends it", release_request_id, exc_info=True
            )

    transaction.on_commit(send)


def untold(now=None):
    """(holder, requester): the ids of the requests whose e-mail is still to send, once SWEEP_AFTER
    has passed since the change it tells of (their own task had time to run)."""
    before = (now or timezone.now()) - SWEEP_AFTER
    waiting = ReleaseRequest.objects.filter(holder_told_at__isnull=True, created_at__lte=before)
    answered = ReleaseRequest.objects.filter(
        requester_told_at__isnull=True, requested_by__isnull=False, status__in=ANSWERED
    ).exclude(answered_at__gt=before)
    return (
        list(waiting.open().values_list("pk", flat=True)),
        list(answered.values_list("pk", flat=True)),
    )


def _take(release_request_id, field, **where):
    """Mark the e-mail `field` as sent, once: False when it was already (or the request is gone)."""
    return bool(
        ReleaseRequest.objects.filter(pk=release_request_id, **{f"{field}__isnull": True}, **where).update(
            **{field: timezone.now()}
        )
    )


def _send(release_request_id, field, messages):
    try:
        mailers.default.send_messages(messages)
    except Exception:
        # Not sent: the task retries (see tasks.py).
        ReleaseRequest.objects.filter(pk=release_request_id).update(**{field: None})
        raise


def tell_holder(release_request_id):
    """E-mail the holding organization's owners and admins that `release_request_id` waits for their
    answer, with the link to the device page; once, and only while the request is open. Returns
    whether an e-mail went out."""
    if not _take(release_request_id, "holder_told_at", status=ReleaseRequest.Status.OPEN):
        return False
    release_request = ReleaseRequest.objects.select_related("device").get(pk=release_request_id)
    context = {
        "release_request": release_request,
        "device": release_request.device,
        "device_url": portal_origin() + reverse("device-detail", args=[release_request.device.code]),
        "site_name": settings.SITE_NAME,
    }
    body = render_to_string("releaserequests/holder_email.txt", context)
    recipients = Membership.objects.filter(
        organization_id=release_request.holding_organization_id, role__in=ANSWERING_ROLES
    ).values_list("user__email", flat=True)
    subject = f"A request to release “{release_request.device.name}”"
    _send(release_request_id, "holder_told_at", [EmailMessage(subject, body, to=[email]) for email in recipients])
    return True


def tell_requester(release_request_id):
    """E-mail the user who asked the answer to `release_request_id` (released, declined, closed by
    another release, or expired), once it has one, with the link to their organization's release
    requests (and to claim the unit, when released). Returns whether an e-mail went out."""
    if not _take(release_request_id, "requester_told_at", status__in=ANSWERED, requested_by__isnull=False):
        return False
    release_request = ReleaseRequest.objects.select_related(
        "requested_by", "requesting_organization", "device__device_model", "device__identity"
    ).get(pk=release_request_id)
    origin = portal_origin()
    unit = unit_description(release_request.device)
    context = {
        "release_request": release_request,
        "unit": unit,
        "list_url": origin + reverse("release-requests", args=[release_request.requesting_organization.code]),
        "claim_url": origin + reverse("release-request-claim", args=[release_request.code]),
        "site_name": settings.SITE_NAME,
    }
    body = render_to_string("releaserequests/requester_email.txt", context)
    subject = f"Your release request for {unit}: {release_request.get_status_display().lower()}"
    _send(
        release_request_id, "requester_told_at", [EmailMessage(subject, body, to=[release_request.requested_by.email])]
    )
    return True
