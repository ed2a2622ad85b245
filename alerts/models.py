from django.db import models

from accounts.models import Role

# Who gets offline alerts until they choose: the members who answer for the fleet.
SUBSCRIBED_BY_DEFAULT = (Role.OWNER, Role.ADMIN)


class AlertPreference(models.Model):
    """A member's choice of offline alerts in one organization, and how far their e-mails have gone.

    No row yet: the role's default (SUBSCRIBED_BY_DEFAULT), nothing sent. The row is written when
    the member chooses, or by the first alert e-mail (alerts/sending.py).
    """

    membership = models.OneToOneField("accounts.Membership", on_delete=models.CASCADE, related_name="alert_preference")
    enabled = models.BooleanField()
    # Empty: every space of the organization, including spaces created later.
    spaces = models.ManyToManyField("spaces.Space", blank=True, related_name="+")
    # Connectivity changes up to this time were covered by an e-mail (or had nothing to report).
    sent_until = models.DateTimeField(null=True, blank=True)
    last_sent_at = models.DateTimeField(null=True, blank=True)

    def __str__(self):
        return f"Offline alerts of {self.membership}: {'on' if self.enabled else 'off'}"

    @staticmethod
    def default_for(role):
        return role in SUBSCRIBED_BY_DEFAULT
