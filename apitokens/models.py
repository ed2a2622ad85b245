import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone

from accounts.models import Membership, Role


class ApiTokenQuerySet(models.QuerySet):
    def usable(self, now=None):
        """Tokens not revoked and not expired."""
        now = now or timezone.now()
        return self.filter(revoked_at__isnull=True).filter(
            models.Q(expires_at__isnull=True) | models.Q(expires_at__gt=now)
        )


class ApiToken(models.Model):
    """An organization's key to the customer API, with a member's role (viewer, operator, admin).

    The token is shown once, when it is created; only its keyed hash is kept (apitokens/tokens.py).
    Each token acts through its own account (`user`: no password, no membership, never signs in),
    so the rules that record who acted (claimed_by, audit log, command senders, claim throttles)
    record the token, as GitLab's project access tokens do with their bot users.
    """

    ROLES = [(Role.ADMIN, Role.ADMIN.label), (Role.OPERATOR, Role.OPERATOR.label), (Role.VIEWER, Role.VIEWER.label)]

    code = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    organization = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="api_tokens")
    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="api_token")
    name = models.CharField(max_length=100)
    role = models.CharField(max_length=16, choices=ROLES, default=Role.VIEWER)
    # The first characters of the token, shown in the list so people can tell their tokens apart.
    prefix = models.CharField(max_length=16)
    token_hash = models.CharField(max_length=64, unique=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = ApiTokenQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(role__in=[Role.ADMIN, Role.OPERATOR, Role.VIEWER]), name="apitoken_role_valid"
            ),
        ]

    def __str__(self):
        return self.name

    def state(self, now=None):
        """ "active", "expired" or "revoked", as the tokens page shows it."""
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= (now or timezone.now()):
            return "expired"
        return "active"

    def membership(self):
        """The token's rights as an unsaved Membership: what accounts.access checks a role with."""
        return Membership(user=self.user, organization=self.organization, role=self.role)
