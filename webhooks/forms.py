from django import forms
from django.core.exceptions import ValidationError

from portal.sent_once import SentOnceForm

from .models import Endpoint, EventName, all_events
from .secrets import SECRET_RULE, InvalidSecret, checked_secret
from .targets import RefusedTarget, check_url


class EventsField(forms.MultipleChoiceField):
    widget = forms.CheckboxSelectMultiple

    def __init__(self, **kwargs):
        super().__init__(choices=EventName.choices, required=False, **kwargs)


class EndpointForm(SentOnceForm):
    url = forms.URLField(label="URL", max_length=Endpoint._meta.get_field("url").max_length, assume_scheme="https")
    events = EventsField(initial=all_events)
    secret = forms.CharField(
        label="Secret",
        required=False,
        strip=True,
        max_length=128,
        help_text=f"Leave empty to have one generated, or type one: {SECRET_RULE}.",
    )

    def clean_url(self):
        try:
            return check_url(self.cleaned_data["url"])
        except RefusedTarget as refusal:
            raise ValidationError(refusal.message, code="refused") from refusal

    def clean_secret(self):
        secret = self.cleaned_data["secret"]
        try:
            return checked_secret(secret) if secret else ""
        except InvalidSecret as invalid:
            raise ValidationError(invalid.message, code="invalid") from invalid


class EndpointChangeForm(forms.Form):
    events = EventsField()
    enabled = forms.BooleanField(required=False)
