"""The rules of release requests, one function each; the views, the tasks and the release rule
(through devices.signals.device_released) call them.

An organization whose claim was refused because another organization holds the unit, after it had
proven the unit (identifiers and, for code models, the claim code), may ask the holder to release
it, with a message. Neither side learns who the other is: the holder sees the message and the
date, the requester the unit as they typed it and the answer. Who may act (owners and admins of
the organization concerned) is the caller's check, as for every device rule.
"""

from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from accounts.audit import record_audit
from accounts.models import AuditEntry
from devices.actions import DeviceActionError, lock_claimed, release_device
from devices.models import Device
from portal.ratelimit import RateLimit, RateLimitExceeded, RateLimitUnavailable, count_attempt, take_back

from . import notices, tasks
from .models import MESSAGE_MAX_LENGTH, ReleaseRequest, unit_description

# An unanswered request expires after this long.
REQUEST_LIFETIME = timedelta(days=14)
# After a release in answer to a request, only the requester may claim the unit for this long: the
# holder let it go for them, and whoever else holds its code (the holder too) must not win the race.
CLAIM_WINDOW = timedelta(hours=24)

# Requests are limited per user and per organization: each one e-mails another organization's
# owners and admins, whom a stranger holding many stickers must not flood.
REQUESTS_PER_USER = RateLimit("release_requests:user", limit=10, window=24 * 60 * 60)
REQUESTS_PER_ORGANIZATION = RateLimit("release_requests:organization", limit=30, window=24 * 60 * 60)


class ReleaseRequestError(DeviceActionError):
    """A release request rule refused the action; its message is for the person acting."""


def request_release(*, device, organization, actor, message, claim_code_hash="", now=None):
    """Ask the organization holding `device` to release it for `organization`, with `message` (plain
    text, at most MESSAGE_MAX_LENGTH characters, shown to the holder as text).

    The caller passes the device of a claim `organization` was refused with ClaimedByAnotherOrganization,
    which claim_device raises only once the values proved the unit, and the keyed hash of the claim
    code that proved it (kept so that the requester can claim the released unit without typing it
    again). Checked on the locked device row: it must still be claimed by another organization. One
    open request per unit and requesting organization (an expired one no longer counts). Counted
    against REQUESTS_PER_USER and REQUESTS_PER_ORGANIZATION; a refused request is taken back.
    Recorded in the requester's audit log (RELEASE_REQUESTED, naming the unit only); the holder's
    owners and admins are e-mailed after the commit.
    """
    now = now or timezone.now()
    message = message.strip()
    if len(message) > MESSAGE_MAX_LENGTH:
        raise ReleaseRequestError(f"Keep the message to {MESSAGE_MAX_LENGTH} characters.")
    _count_request(actor, organization.pk)
    try:
        with transaction.atomic():
            locked = (
                Device.objects.select_for_update(of=("self",))
                .select_related("identity", "device_model")
                .get(pk=device.pk)
            )
            if locked.status != Device.Status.CLAIMED or locked.organization_id == organization.pk:
                raise ReleaseRequestError(
                    "This device is no longer held by another organization: try claiming it again."
                )
            mine = ReleaseRequest.objects.filter(device=locked, requesting_organization=organization)
            mine.filter(status=ReleaseRequest.Status.OPEN, expires_at__lte=now).update(
                status=ReleaseRequest.Status.EXPIRED
            )
            waiting = mine.open(now).first()
            if waiting is not None:
                raise ReleaseRequestError(
                    "Your organization has already asked the owner to release this device; they have "
                    f"until {timezone.localtime(waiting.expires_at):%Y-%m-%d} to answer."
                )
            release_request = ReleaseRequest.objects.create(
                device=locked,
                holding_organization_id=locked.organization_id,
                requesting_organization=organization,
                requested_by=actor,
                message=message,
                claim_code_hash=claim_code_hash,
                created_at=now,
                expires_at=now + REQUEST_LIFETIME,
            )
            record_audit(
                organization_id=organization.pk,
                actor=actor,
                action=AuditEntry.Action.RELEASE_REQUESTED,
                target=unit_description(locked),
                details={"request": str(release_request.code)},
            )
            notices.send_after_commit(tasks.tell_holder, release_request.pk)
    except ReleaseRequestError:
        take_back(REQUESTS_PER_USER, actor.pk)
        take_back(REQUESTS_PER_ORGANIZATION, organization.pk)
        raise
    return release_request


def _count_request(actor, organization_id):
    try:
        count_attempt((REQUESTS_PER_USER, actor.pk), (REQUESTS_PER_ORGANIZATION, organization_id))
    except RateLimitExceeded as exceeded:
        raise ReleaseRequestError(
            "Your organization has sent many release requests today; "
            f"try again after {timezone.localtime(exceeded.retry_at):%Y-%m-%d %H:%M %Z}."
        ) from None
    except RateLimitUnavailable:
        raise ReleaseRequestError(
            "Release requests are unavailable for a moment because the portal cannot count them. "
            "Please try again in a minute."
        ) from None


def _lock_open(release_request, now):
    locked = ReleaseRequest.objects.select_for_update().select_related("device").get(pk=release_request.pk)
    if locked.current_status(now) != ReleaseRequest.Status.OPEN:
        raise ReleaseRequestError("This request was answered, closed or expired meanwhile.")
    return locked


def decline_request(release_request, *, actor, now=None):
    """The holder declines `release_request`: it is answered, the device stays. Checked on the locked
    request (still open, not expired). Recorded in the holder's audit log (RELEASE_REQUEST_DECLINED,
    naming their device only); the requester is e-mailed the answer after the commit."""
    now = now or timezone.now()
    with transaction.atomic():
        locked = _lock_open(release_request, now)
        locked.status = ReleaseRequest.Status.DECLINED
        locked.answered_at = now
        locked.save(update_fields=["status", "answered_at"])
        record_audit(
            organization_id=locked.holding_organization_id,
            actor=actor,
            action=AuditEntry.Action.RELEASE_REQUEST_DECLINED,
            target=locked.device.name,
            details={"device": str(locked.device.code)},
        )
        notices.send_after_commit(tasks.tell_requester, locked.pk)
    return locked


def release_for_request(release_request, *, actor, now=None):
    """The holder releases the device in answer to `release_request`, through release_device (the one
    release rule: history deleted, key revoked, DEVICE_RELEASED in the holder's log); from then on,
    for CLAIM_WINDOW, only the requesting organization may claim it (claims.claim_device checks
    ReleaseRequest.objects.reserving). The device is locked first, as every release does, then the
    request (still open); the other requests about the device close with the release
    (close_on_release). The requester is e-mailed the answer after the commit."""
    now = now or timezone.now()
    with transaction.atomic():
        lock_claimed(release_request.device)
        locked = _lock_open(release_request, now)
        # Answered before the release, so that close_on_release leaves it out.
        locked.status = ReleaseRequest.Status.RELEASED
        locked.answered_at = now
        locked.save(update_fields=["status", "answered_at"])
        release_device(locked.device, actor=actor)
        locked.reserved_until = now + CLAIM_WINDOW
        locked.save(update_fields=["reserved_until"])
        notices.send_after_commit(tasks.tell_requester, locked.pk)
    return locked


def close_on_release(sender=None, *, device, organization_id, **kwargs):
    """Connected to devices.signals.device_released, inside the release's transaction: the open
    requests about the device close (the holder let it go otherwise: by its own release, an answer
    to another request, or vendor staff's), their requesters e-mailed after the commit. Every
    message written to the holder goes, as the holder's record of the device does, and any claim
    window still open on the device closes (a requester who claimed and released it again leaves
    the unit to anyone)."""
    about = ReleaseRequest.objects.filter(device=device)
    closing = list(about.filter(status=ReleaseRequest.Status.OPEN).values_list("pk", flat=True))
    about.filter(pk__in=closing).update(status=ReleaseRequest.Status.CLOSED, answered_at=timezone.now())
    about.filter(holding_organization_id=organization_id).exclude(message="").update(message="")
    about.filter(reserved_until__isnull=False).update(reserved_until=None)
    for pk in closing:
        notices.send_after_commit(tasks.tell_requester, pk)


def expire_requests(now=None):
    """Mark the open requests older than REQUEST_LIFETIME expired, in one statement, and e-mail their
    requesters after the commit. Until it runs, ReleaseRequest.objects.open leaves them out already.
    Returns how many expired."""
    now = now or timezone.now()
    with transaction.atomic():
        due = ReleaseRequest.objects.select_for_update(skip_locked=True).filter(
            status=ReleaseRequest.Status.OPEN, expires_at__lte=now
        )
        expired = list(due.values_list("pk", flat=True))
        ReleaseRequest.objects.filter(pk__in=expired).update(status=ReleaseRequest.Status.EXPIRED, answered_at=now)
        for pk in expired:
            notices.send_after_commit(tasks.tell_requester, pk)
    return len(expired)
