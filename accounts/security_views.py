"""Signing in with a second factor, and the account's security page: authenticator app, recovery
codes, passkeys and sessions. Thin views over accounts/two_factor.py and accounts/sessions.py."""

import base64
import time
from urllib.parse import urlencode

import segno
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.contrib.auth.mixins import LoginRequiredMixin
from django.shortcuts import redirect, render, resolve_url
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.generic import FormView, TemplateView, View
from django_otp import login as otp_login
from django_otp.plugins.otp_totp.models import TOTPDevice
from django_otp_webauthn.models import WebAuthnCredential

from . import sessions, two_factor
from .forms import CodeForm, EmailAuthenticationForm, PasskeyNameForm
from .models import User
from .throttle import SignInThrottled

# The password step's outcome waits this long in the session for the code step.
PENDING_SECONDS = 5 * 60
_PENDING = "two_factor_pending"


def _safe_next(request, default=None):
    target = request.POST.get("next") or request.GET.get("next")
    if target and url_has_allowed_host_and_scheme(target, {request.get_host()}, require_https=request.is_secure()):
        return target
    return default or resolve_url(settings.LOGIN_REDIRECT_URL)


class SignInView(auth_views.LoginView):
    """The password step. An account with a second factor is signed in only after the code step;
    until the password is right, the answer is the same for every account."""

    authentication_form = EmailAuthenticationForm
    redirect_authenticated_user = True

    def form_valid(self, form):
        user = form.get_user()
        if not two_factor.has_second_factor(user):
            return super().form_valid(form)
        self.request.session[_PENDING] = {"user": user.pk, "backend": user.backend, "at": time.time()}
        return redirect_to_step(self.request, "two-factor-code")


def redirect_to_step(request, step):
    target = request.POST.get("next") or request.GET.get("next")
    return redirect(resolve_url(step) + (f"?{urlencode({'next': target})}" if target else ""))


class SecondStepView(FormView):
    """The code step: an authentication code, a recovery code or a passkey. For the password step's
    person (not signed in yet), and for a signed-in person whose session has not used a factor
    (signed in before they set one up) when something requires it."""

    template_name = "registration/two_factor_code.html"
    form_class = CodeForm

    def dispatch(self, request, *args, **kwargs):
        self.pending = None
        if request.user.is_authenticated:
            self.person = request.user
            if not two_factor.has_second_factor(self.person):
                return redirect_to_step(request, "two-factor-setup")
        else:
            self.pending = request.session.get(_PENDING)
            fresh = self.pending and time.time() - self.pending["at"] <= PENDING_SECONDS
            self.person = fresh and User.objects.filter(pk=self.pending["user"], is_active=True).first()
            if not self.person:
                return redirect_to_step(request, "login")
        return super().dispatch(request, *args, **kwargs)

    def get_context_data(self, **kwargs):
        return super().get_context_data(
            next=self.request.GET.get("next", ""),
            has_passkey=WebAuthnCredential.objects.filter(user=self.person, confirmed=True).exists(),
            **kwargs,
        )

    def form_valid(self, form):
        try:
            device = two_factor.verify_code(self.request, self.person, form.cleaned_data["code"])
        except (two_factor.TwoFactorError, SignInThrottled) as refused:
            form.add_error("code", refused.message)
            return self.form_invalid(form)
        if self.pending:
            del self.request.session[_PENDING]
            login(self.request, self.person, backend=self.pending["backend"])
        otp_login(self.request, device)
        return redirect(_safe_next(self.request))


class VerifiedSessionMixin(LoginRequiredMixin):
    """Changes to the factors of an account that has one need a session that used one."""

    def dispatch(self, request, *args, **kwargs):
        user = request.user
        if user.is_authenticated and two_factor.has_second_factor(user) and not two_factor.session_is_verified(user):
            return redirect_to_step(request, "two-factor-code")
        return super().dispatch(request, *args, **kwargs)


class AccountSecurityView(LoginRequiredMixin, TemplateView):
    """The account page: password, two-factor authentication, passkeys, signed-in sessions."""

    template_name = "registration/account_security.html"

    def get_context_data(self, **kwargs):
        user = self.request.user
        return super().get_context_data(
            has_authenticator=TOTPDevice.objects.filter(user=user, confirmed=True).exists(),
            recovery_codes_left=two_factor.recovery_codes_left(user),
            passkeys=WebAuthnCredential.objects.filter(user=user, confirmed=True).order_by("created_at"),
            sessions=sessions.signed_in_sessions(user, current_key=self.request.session.session_key),
            **kwargs,
        )


class AuthenticatorSetupView(VerifiedSessionMixin, FormView):
    """Set up an authenticator app: its QR code and secret, confirmed by one code from it. Also
    where a person is sent to set up a factor (the page offers a passkey too)."""

    template_name = "registration/two_factor_setup.html"
    form_class = CodeForm

    def get_context_data(self, **kwargs):
        device = two_factor.pending_authenticator(self.request.user)
        secret = base64.b32encode(device.bin_key).decode()
        return super().get_context_data(
            qr_svg=segno.make(device.config_url, error="m").svg_inline(scale=4, omitsize=True),
            secret=" ".join(secret[i : i + 4] for i in range(0, len(secret), 4)),
            next=self.request.GET.get("next", ""),
            **kwargs,
        )

    def form_valid(self, form):
        try:
            codes = two_factor.confirm_authenticator(self.request, form.cleaned_data["code"])
        except (two_factor.TwoFactorError, SignInThrottled) as refused:
            form.add_error("code", refused.message)
            return self.form_invalid(form)
        return _show_recovery_codes(self.request, codes, "Your authenticator app is set up.")


def _show_recovery_codes(request, codes, headline):
    context = {"codes": codes, "headline": headline, "next": _safe_next(request, resolve_url("account"))}
    return render(request, "registration/recovery_codes.html", context)


class RecoveryCodesView(VerifiedSessionMixin, View):
    """POST: ten new recovery codes in place of the old ones."""

    def post(self, request):
        if not two_factor.has_second_factor(request.user):
            return redirect("two-factor-setup")
        codes = two_factor.regenerate_recovery_codes(request.user)
        return _show_recovery_codes(request, codes, "New recovery codes: the old ones no longer work.")


class TurnOffTwoFactorView(VerifiedSessionMixin, View):
    """POST with a current code: remove the authenticator app and the recovery codes."""

    def post(self, request):
        form = CodeForm(request.POST)
        try:
            if not form.is_valid():
                raise two_factor.TwoFactorError("Enter a current code to turn two-factor authentication off.")
            two_factor.turn_off_two_factor(request, form.cleaned_data["code"])
        except (two_factor.TwoFactorError, SignInThrottled) as refused:
            messages.error(request, refused.message)
        else:
            messages.success(request, "Two-factor authentication is off; your other sessions were ended.")
        return redirect("account")


class PasskeyRenameView(LoginRequiredMixin, View):
    def post(self, request, pk):
        form = PasskeyNameForm(request.POST)
        if form.is_valid() and two_factor.rename_passkey(request.user, pk, form.cleaned_data["name"]):
            messages.success(request, "The passkey is renamed.")
        else:
            messages.error(request, "Give the passkey a name of up to 64 characters.")
        return redirect("account")


class PasskeyRemoveView(VerifiedSessionMixin, View):
    def post(self, request, pk):
        if two_factor.remove_passkey(request, pk):
            messages.success(request, "The passkey is removed; your other sessions were ended.")
        return redirect("account")


class SessionEndView(LoginRequiredMixin, View):
    def post(self, request, reference):
        if sessions.end_session(request.user, reference):
            messages.success(request, "The session is ended.")
        return redirect("account")


class OtherSessionsEndView(LoginRequiredMixin, View):
    def post(self, request):
        sessions.end_other_sessions(request)
        messages.success(request, "Every other session is ended.")
        return redirect("account")


class PasswordChangeView(VerifiedSessionMixin, auth_views.PasswordChangeView):
    """Django's, and every other session of the person ends (it would end at its next request
    anyway, its password hash being stale; now it also leaves the list). A session that never used
    the account's second factor (one signed in before it was set up) uses it first: a stolen old
    session must not be enough to take the account over."""

    def form_valid(self, form):
        response = super().form_valid(form)
        sessions.end_other_sessions(self.request)
        return response
