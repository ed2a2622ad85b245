from django import forms
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth import password_validation
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import ValidationError

from portal.client import client_address

from .models import AuditEntry, Role, User
from .throttle import SignInThrottled, count_sign_in_attempt, record_sign_in_success
from .two_factor import has_second_factor


class ThrottledSignInMixin:
    """Refuses sign-ins for an account or an address that failed too often (accounts/throttle.py).

    The attempt is counted before the password is checked; a wrong password leaves it counted.
    """

    def clean(self):
        email = self.cleaned_data.get("username") or ""
        address = client_address(self.request) if self.request else "unknown"
        try:
            count_sign_in_attempt(email, address)
        except SignInThrottled as throttled:
            raise ValidationError(throttled.message, code="throttled") from throttled
        cleaned_data = super().clean()
        if self.get_user() is not None:  # the password was checked and right (not merely left empty)
            record_sign_in_success(email, address)
        return cleaned_data


class EmailAuthenticationForm(ThrottledSignInMixin, AuthenticationForm):
    """The sign-in form, labelled for e-mail addresses."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["username"].label = "E-mail address"
        self.fields["username"].widget.attrs.update({"autocomplete": "email", "autofocus": True})


class ThrottledAdminAuthenticationForm(ThrottledSignInMixin, AdminAuthenticationForm):
    """The vendor admin's sign-in, under the same throttle as the portal's. It has no code step:
    an account with a second factor signs in on the portal's sign-in page instead."""

    def confirm_login_allowed(self, user):
        super().confirm_login_allowed(user)
        if has_second_factor(user):
            raise ValidationError(
                "Your account has two-factor authentication: sign in on the portal's sign-in page, "
                "which then asks for your code, and open the admin from there.",
                code="two_factor",
            )


class CodeForm(forms.Form):
    code = forms.CharField(
        label="Authentication code",
        max_length=32,
        help_text="The 6 digits your authenticator app shows, or one of your recovery codes.",
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "text", "autofocus": True}),
    )


class PasskeyNameForm(forms.Form):
    name = forms.CharField(max_length=64)


class TwoFactorPolicyForm(forms.Form):
    required = forms.BooleanField(required=False)


class InvitationForm(forms.Form):
    email = forms.EmailField(label="E-mail address")
    role = forms.ChoiceField(choices=Role.choices, initial=Role.VIEWER)


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)


class SignUpForm(forms.Form):
    """Creates the account of an invited person who has none: the e-mail address is the invited one."""

    full_name = forms.CharField(label="Your name", max_length=User._meta.get_field("full_name").max_length)
    password1 = forms.CharField(label="Password", strip=False, widget=forms.PasswordInput)
    password2 = forms.CharField(label="Password again", strip=False, widget=forms.PasswordInput)

    def __init__(self, *args, email, **kwargs):
        super().__init__(*args, **kwargs)
        self.email = email

    def clean(self):
        cleaned_data = super().clean()
        password1, password2 = cleaned_data.get("password1"), cleaned_data.get("password2")
        if password1 and password2:
            if password1 != password2:
                self.add_error("password2", "The two passwords differ.")
            else:
                try:
                    password_validation.validate_password(
                        password1, User(email=self.email, full_name=cleaned_data.get("full_name", ""))
                    )
                except ValidationError as error:
                    self.add_error("password1", error)
        return cleaned_data

    def save(self):
        return User.objects.create_user(
            email=self.email, password=self.cleaned_data["password1"], full_name=self.cleaned_data["full_name"]
        )


class AuditFilterForm(forms.Form):
    """Filters of the audit log page and its CSV export (all optional)."""

    action = forms.ChoiceField(choices=[("", "Any action"), *AuditEntry.Action.choices], required=False)
    actor = forms.ChoiceField(choices=[("", "Anyone")], required=False)
    since = forms.DateField(label="From", required=False, widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(label="To", required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def __init__(self, *args, actors, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["actor"].choices = [("", "Anyone"), *actors]

    def clean(self):
        cleaned_data = super().clean()
        since, until = cleaned_data.get("since"), cleaned_data.get("until")
        if since and until and since > until:
            self.add_error("until", "The end date is before the start date.")
        return cleaned_data

    def filter(self, entries):
        """`entries` narrowed to the valid filters."""
        data = self.cleaned_data
        if data.get("action"):
            entries = entries.filter(action=data["action"])
        if data.get("actor"):
            entries = entries.filter(actor_email=data["actor"])
        if data.get("since"):
            entries = entries.filter(created_at__date__gte=data["since"])
        if data.get("until"):
            entries = entries.filter(created_at__date__lte=data["until"])
        return entries
