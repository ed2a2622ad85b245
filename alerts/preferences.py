"""Members' choices of offline alerts: on or off, for every space or some, and the signed link
that turns them off from the e-mail itself."""

from django.core import signing
from django.db import transaction
from django.utils import timezone

from accounts.models import Membership

from .models import AlertPreference

_UNSUBSCRIBE_SALT = "alerts.unsubscribe"


class UnsubscribeLinkInvalid(Exception):
    """The link was altered, cut short, or its member has left the organization."""

    def __str__(self):
        return (
            "This unsubscribe link is not valid: it may have been cut short by your mail program. "
            "Sign in and turn offline alerts off on your Offline alerts page."
        )


def alert_choice(membership):
    """(enabled, spaces) as the member chose, or the role's default: on for owners and admins,
    off for the others, every space. `spaces` empty means every space."""
    preference = AlertPreference.objects.filter(membership=membership).first()
    if preference is None:
        return AlertPreference.default_for(membership.role), []
    return preference.enabled, list(preference.spaces.all())


def set_alert_preference(membership, *, enabled, spaces=()):
    """Record `membership`'s choice. `spaces` (of the member's organization; empty: every space)
    narrows the alerts to devices in them. Turning alerts on starts from now: the member is not
    sent what went offline while they were off. Not audited: it is the member's own inbox."""
    if any(space.organization_id != membership.organization_id for space in spaces):
        raise ValueError("spaces must belong to the member's organization")
    with transaction.atomic():
        preference, created = AlertPreference.objects.select_for_update().get_or_create(
            membership=membership, defaults={"enabled": enabled}
        )
        was_enabled = AlertPreference.default_for(membership.role) if created else preference.enabled
        if enabled and not was_enabled:
            preference.sent_until = timezone.now()
        preference.enabled = enabled
        preference.save()
        preference.spaces.set(spaces)
    return preference


def unsubscribe_token(membership):
    """The signed part of the unsubscribe link: it names the membership and cannot be forged.
    No expiry, as a link in an old e-mail must still work."""
    return signing.dumps(membership.pk, salt=_UNSUBSCRIBE_SALT)


def membership_from_unsubscribe_token(token):
    """The membership the link was made for; UnsubscribeLinkInvalid if altered or gone."""
    try:
        membership_id = signing.loads(token, salt=_UNSUBSCRIBE_SALT)
    except signing.BadSignature as exc:
        raise UnsubscribeLinkInvalid from exc
    membership = Membership.objects.select_related("user", "organization").filter(pk=membership_id).first()
    if membership is None:
        raise UnsubscribeLinkInvalid
    return membership


def unsubscribe(membership):
    """Turn `membership`'s offline alerts off (the one-click link): the spaces chosen are kept."""
    with transaction.atomic():
        preference, _ = AlertPreference.objects.select_for_update().get_or_create(
            membership=membership, defaults={"enabled": False}
        )
        if preference.enabled:
            preference.enabled = False
            preference.save(update_fields=["enabled"])
