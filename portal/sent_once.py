"""Forms that create a secret are acted on once per page: reloading the page that showed the new
secret makes the browser send its POST again, which must not quietly create a second token or
endpoint (a live credential nobody copied) and show that one instead.

Each rendering of such a form carries a random key; the first POST with a key takes it (an atomic
add in the shared cache), and a later one with the same key is refused with a form error. The
secret itself is never kept anywhere to be shown again.
"""

import secrets

from django import forms
from django.core.cache import cache

# Long enough for any reload of the page; a key is useless once the page that held it is gone.
KEY_LIFETIME = 24 * 60 * 60
ALREADY_SENT = (
    "This form was already sent: what it created was shown once, on the page that answered it. "
    "If you did not copy its secret, revoke or remove it and create another."
)


class SentOnceForm(forms.Form):
    sending = forms.CharField(widget=forms.HiddenInput, initial=lambda: secrets.token_urlsafe(18), max_length=64)

    def entered(self):
        """The cleaned values the person entered (the page's key left out)."""
        return {name: value for name, value in self.cleaned_data.items() if name != "sending"}

    def created_once(self, create):
        """What create() returns, if this is the first POST of the page's form (call it once the
        form is valid); None, with the form error, if the page sent it before. A create() that
        fails leaves the page free to send its form again."""
        key = f"form-sent:{self.cleaned_data['sending']}"
        if not cache.add(key, True, KEY_LIFETIME):
            self.add_error(None, ALREADY_SENT)
            return None
        try:
            return create()
        except BaseException:
            cache.delete(key)
            raise
