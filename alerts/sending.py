"""Offline alert e-mails: after each connectivity sweep, every subscribed member with news gets at
most one e-mail per ALERT_EMAIL_INTERVAL listing the devices that went offline or came back since
their last one. Set-based: a fleet-wide outage is one e-mail per member, never one per device.

Each member's preference row keeps a watermark (sent_until): the e-mail covers the connectivity
events after it, up to the sweep's start, and moves it. The database is the source of truth: a
task the broker lost is planned again by the next sweep.
"""

from datetime import timedelta

from django.conf import settings
from django.core.mail import EmailMessage
from django.db import transaction
from django.db.models import Count, Exists, OuterRef, Q, Subquery, Value
from django.db.models.functions import Coalesce, Greatest
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from accounts.models import Membership
from devices.models import Device, DeviceEvent
from portal.links import portal_origin

from .models import SUBSCRIBED_BY_DEFAULT, AlertPreference
from .preferences import unsubscribe_token

CONNECTIVITY = (DeviceEvent.Kind.WENT_OFFLINE, DeviceEvent.Kind.BACK_ONLINE)
# A member who never had an e-mail is told about the last day at most, not the fleet's history.
LOOKBACK = timedelta(days=1)
# Devices named in one e-mail, per state; the rest are counted and linked.
LISTED_PER_STATE = 50


def _interval():
    return timedelta(seconds=settings.ALERT_EMAIL_INTERVAL)


def members_due(*, until, now=None):
    """Ids of the memberships to e-mail now: subscribed (by choice or by their role's default), not
    e-mailed within the interval, with a connectivity event in their organization after their
    watermark. One query; the spaces a member narrowed to are applied when sending."""
    now = now or timezone.now()
    subscribed = Q(alert_preference__enabled=True) | Q(alert_preference__isnull=True, role__in=SUBSCRIBED_BY_DEFAULT)
    rested = Q(alert_preference__last_sent_at__isnull=True) | Q(alert_preference__last_sent_at__lte=now - _interval())
    news = DeviceEvent.objects.filter(
        kind__in=CONNECTIVITY,
        device__organization_id=OuterRef("organization_id"),
        created_at__gt=OuterRef("since"),
        created_at__lte=until,
    )
    return list(
        Membership.objects.filter(subscribed, rested)
        .annotate(since=Greatest(Coalesce("alert_preference__sent_until", "created_at"), Value(until - LOOKBACK)))
        .filter(Exists(news))
        .values_list("pk", flat=True)
    )


def _changed_devices(membership, preference, *, since, until):
    """The member's organization's devices with a connectivity event in (since, until], in the
    spaces the member chose, as one queryset (the e-mail reads their state now)."""
    events = DeviceEvent.objects.filter(
        kind__in=CONNECTIVITY,
        device__organization_id=membership.organization_id,
        created_at__gt=since,
        created_at__lte=until,
    )
    devices = Device.objects.filter(
        organization_id=membership.organization_id, pk__in=Subquery(events.values("device_id"))
    )
    space_ids = list(preference.spaces.values_list("pk", flat=True))
    if space_ids:
        devices = devices.filter(space_id__in=space_ids)
    return devices


def send_offline_alert(membership_id, *, until, now=None):
    """E-mail member `membership_id` the devices that went offline or came back between their
    watermark and `until` (the sweep's start), then move the watermark to `until`.

    Idempotent: the preference row is locked, and a member e-mailed within the interval, turned
    off, or already covered up to `until` gets nothing. Nothing to report (the changes were in
    spaces the member narrowed away) moves the watermark without an e-mail. The e-mail is sent
    before the watermark commits: a crash between the two sends it again, never loses it.
    """
    now = now or timezone.now()
    membership = Membership.objects.select_related("user", "organization").filter(pk=membership_id).first()
    if membership is None:
        return False
    with transaction.atomic():
        AlertPreference.objects.get_or_create(
            membership=membership, defaults={"enabled": AlertPreference.default_for(membership.role)}
        )
        preference = AlertPreference.objects.select_for_update().get(membership=membership)
        if not preference.enabled or (preference.last_sent_at and preference.last_sent_at > now - _interval()):
            return False
        since = max(preference.sent_until or membership.created_at, until - LOOKBACK)
        if since >= until:
            return False
        devices = _changed_devices(membership, preference, since=since, until=until)
        counts = devices.aggregate(
            offline=Count("pk", filter=Q(online=False)), online=Count("pk", filter=Q(online=True))
        )
        preference.sent_until = until
        if counts["offline"] or counts["online"]:
            _email(membership, devices.filter(online=False), devices.filter(online=True), counts)
            preference.last_sent_at = now
        preference.save(update_fields=["sent_until", "last_sent_at"])
    return bool(counts["offline"] or counts["online"])


def _email(membership, offline, online, counts):
    origin = portal_origin()
    unsubscribe_url = origin + reverse("alert-unsubscribe", kwargs={"token": unsubscribe_token(membership)})

    def listed(devices, count):
        if not count:
            return []
        rows = devices.select_related("space").order_by("name", "pk")[:LISTED_PER_STATE]
        return [(device, origin + reverse("device-detail", kwargs={"code": device.code})) for device in rows]

    context = {
        "organization": membership.organization,
        "offline": listed(offline, counts["offline"]),
        "online": listed(online, counts["online"]),
        "counts": counts,
        "more_offline": max(counts["offline"] - LISTED_PER_STATE, 0),
        "more_online": max(counts["online"] - LISTED_PER_STATE, 0),
        "overview_url": origin + reverse("organization-overview", kwargs={"code": membership.organization.code}),
        "preferences_url": origin + reverse("alert-preferences"),
        "unsubscribe_url": unsubscribe_url,
    }
    subject = f"{membership.organization.name}: {counts['offline']} offline, {counts['online']} back online"
    EmailMessage(
        subject=subject,
        body=render_to_string("alerts/alert_email.txt", context),
        to=[membership.user.email],
        # One-click unsubscribe (RFC 8058): the mail program POSTs to the link, no sign-in needed.
        headers={"List-Unsubscribe": f"<{unsubscribe_url}>", "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"},
    ).send()
