"""Account security on every request: where a session was last used (the account page's list of
sessions), and sending a person who must use a second factor to set one up or enter a code."""

from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.urls import reverse

from .sessions import record_session_use
from .two_factor import TwoFactorRequired, has_second_factor


class AccountSecurityMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        # Only after a view that answered: the user was then read without error (a database that
        # failed the view answers 503 through portal/unavailable.py, not here).
        if response.status_code < 500 and request.user.is_authenticated:
            record_session_use(request)
        return response

    def process_exception(self, request, exception):
        if isinstance(exception, TwoFactorRequired):
            return second_factor_needed(request, exception.reason)
        return None


def second_factor_needed(request, reason):
    """Send the person to use their second factor, or to set one up, and back afterwards."""
    has_factor = has_second_factor(request.user)
    messages.info(
        request,
        f"{reason} Enter a code from your authenticator app, or use a passkey."
        if has_factor
        else f"{reason} Set up an authenticator app or a passkey to continue.",
    )
    return redirect_to_login(request.get_full_path(), reverse("two-factor-code" if has_factor else "two-factor-setup"))
