"""Account security on every request: where a session was last used (the account page's list of
sessions), and the requirements of a second factor (an organization's, the admin's)."""

from datetime import datetime

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.urls import reverse
from django.utils import timezone

from portal.client import client_ip
from portal.sessions import CLIENT_SESSION_KEY

from .two_factor import TwoFactorRequired, has_second_factor, session_is_verified

# A session's browser, address and time of use are written at most this often (each write is a
# session save), and at once when the browser or address changes.
ACTIVITY_INTERVAL = 60
USER_AGENT_LENGTH = 300


class AccountSecurityMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if self._admin_needs_second_factor(request):
            return self._second_factor_needed(request, "The admin requires two-factor authentication.")
        response = self.get_response(request)
        if request.user.is_authenticated:
            self._record_activity(request)
        return response

    def process_exception(self, request, exception):
        if isinstance(exception, TwoFactorRequired):
            return self._second_factor_needed(request, exception.reason)
        return None

    def _admin_needs_second_factor(self, request):
        user = request.user
        return (
            settings.ADMIN_TWO_FACTOR_REQUIRED
            and request.path.startswith(reverse("admin:index"))
            and user.is_authenticated
            and (user.is_staff or user.is_superuser)
            and not session_is_verified(user)
            and request.path != reverse("admin:logout")
        )

    def _second_factor_needed(self, request, reason):
        """Send the person to use their second factor, or to set one up, and back afterwards."""
        has_factor = has_second_factor(request.user)
        step = "two-factor-code" if has_factor else "two-factor-setup"
        messages.info(
            request,
            f"{reason} Enter a code from your authenticator app, or use a passkey."
            if has_factor
            else f"{reason} Set up an authenticator app or a passkey to continue.",
        )
        return redirect_to_login(request.get_full_path(), reverse(step))

    def _record_activity(self, request):
        session = request.session
        agent = request.headers.get("user-agent", "")[:USER_AGENT_LENGTH]
        ip = client_ip(request)
        now = timezone.now()
        last = session.get(CLIENT_SESSION_KEY) or {}
        recent = last.get("at") and (now - datetime.fromisoformat(last["at"])).total_seconds() < ACTIVITY_INTERVAL
        if recent and last.get("agent") == agent and last.get("ip") == ip:
            return
        session[CLIENT_SESSION_KEY] = {"agent": agent, "ip": ip, "at": now.isoformat()}
