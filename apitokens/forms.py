from datetime import UTC, datetime, time, timedelta

from django import forms
from django.utils import timezone

from portal.sent_once import SentOnceForm

from .models import ApiToken


class ApiTokenForm(SentOnceForm):
    """A new token: its name, its role, and optionally the last day it works (UTC)."""

    name = forms.CharField(max_length=ApiToken._meta.get_field("name").max_length, help_text="Say what uses it.")
    role = forms.ChoiceField(choices=ApiToken.ROLES, initial=ApiToken.ROLES[-1][0])
    expires_on = forms.DateField(
        label="Works until",
        required=False,
        help_text="Optional: the last day (UTC) the token works. Empty: until it is revoked.",
        widget=forms.DateInput(attrs={"type": "date"}),
    )

    def clean_expires_on(self):
        day = self.cleaned_data["expires_on"]
        if day is not None and day < timezone.now().date():
            raise forms.ValidationError("That day is past: choose today or a later day.")
        return day

    def expires_at(self):
        """The moment the token stops working: the end of its last day, or None."""
        day = self.cleaned_data["expires_on"]
        return None if day is None else datetime.combine(day + timedelta(days=1), time.min, tzinfo=UTC)
