"""A person's signed-in sessions: listed on the account page and ended from it. The list is the
sessions' own table (accounts.UserSession, kept by portal/sessions.py); a session is named on the
page by a keyed hash of its key, never by the key."""

import hmac
from dataclasses import dataclass
from datetime import datetime

from django.contrib.auth.signals import user_logged_in
from django.dispatch import receiver
from django.utils import timezone

from portal.client import client_ip
from portal.keys import derived_key
from portal.sessions import CLIENT_SESSION_KEY, end_sessions

from .models import UserSession

# A session's time of use is written at most this often (each write is a session save).
USE_INTERVAL = 60
USER_AGENT_LENGTH = UserSession._meta.get_field("user_agent").max_length


@receiver(user_logged_in, dispatch_uid="accounts.sessions.record_sign_in")
def _record_sign_in(sender, request, user, **kwargs):
    if request is not None and hasattr(request, "session"):
        record_session_use(request, signing_in=True)


def record_session_use(request, *, signing_in=False):
    """Note in the session the browser, address and time it is used from, at sign-in and then at
    most once every USE_INTERVAL seconds (portal/sessions.py copies them into its row)."""
    session, at = request.session, timezone.now()
    last = session.get(CLIENT_SESSION_KEY)
    if not signing_in and last and (at - datetime.fromisoformat(last["at"])).total_seconds() < USE_INTERVAL:
        return
    agent = request.headers.get("user-agent", "")[:USER_AGENT_LENGTH]
    session[CLIENT_SESSION_KEY] = {"agent": agent, "ip": client_ip(request), "at": at.isoformat()}


@dataclass(frozen=True)
class SignedInSession:
    reference: str
    user_agent: str
    ip: str | None
    last_used_at: datetime | None
    current: bool


def session_reference(session_key):
    """The name of a session on the page and in the URL that ends it."""
    return hmac.new(derived_key(b"session references"), session_key.encode(), "sha256").hexdigest()[:32]


def signed_in_sessions(user, *, current_key):
    """`user`'s unexpired sessions, the current one first, then the most recently used."""
    rows = UserSession.objects.filter(user=user, expire_date__gt=timezone.now()).order_by("-last_used_at")
    listed = [
        SignedInSession(
            session_reference(row.session_key), row.user_agent, row.ip, row.last_used_at, row.session_key == current_key
        )
        for row in rows
    ]
    return sorted(listed, key=lambda session: not session.current)


def end_session(user, reference):
    """End the session of `user` that `reference` names; False if none (another's, or gone)."""
    keys = UserSession.objects.filter(user=user).values_list("session_key", flat=True)
    matching = [key for key in keys if hmac.compare_digest(session_reference(key), reference)]
    end_sessions(matching)
    return bool(matching)


def end_other_sessions(request):
    """End every session of the signed-in person but this one."""
    others = UserSession.objects.filter(user=request.user).exclude(session_key=request.session.session_key)
    end_sessions(others.values_list("session_key", flat=True))
