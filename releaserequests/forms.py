from django import forms

from .models import MESSAGE_MAX_LENGTH


class ReleaseRequestForm(forms.Form):
    message = forms.CharField(
        label="Your message to the owner",
        max_length=MESSAGE_MAX_LENGTH,
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text=(
            "The owner sees this message and the date, and nothing else: not your organization, "
            "your name or your e-mail address. Write nothing here you would not tell them."
        ),
    )
