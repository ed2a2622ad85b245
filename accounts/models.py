import uuid

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, BaseUserManager, PermissionsMixin
from django.contrib.sessions.base_session import AbstractBaseSession
from django.db import connection, models
from django.utils import timezone

# The accounts API tokens act through (apitokens/): their addresses are in a domain that can
# receive no mail (RFC 2606), and they have no password.
API_TOKEN_EMAIL_DOMAIN = "api-tokens.invalid"  # noqa: S105 - a mail domain, not a secret


def is_api_token_email(email):
    return email.lower().endswith("@" + API_TOKEN_EMAIL_DOMAIN)


class UserManager(BaseUserManager):
    use_in_migrations = True

    def _create_user(self, email, password, **extra_fields):
        if not email:
            raise ValueError("An e-mail address is required.")
        user = self.model(email=self.normalize_email(email).lower(), **extra_fields)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_user(self, email, password=None, **extra_fields):
        extra_fields.setdefault("is_staff", False)
        extra_fields.setdefault("is_superuser", False)
        return self._create_user(email, password, **extra_fields)

    def create_superuser(self, email, password=None, **extra_fields):
        extra_fields.setdefault("is_staff", True)
        extra_fields.setdefault("is_superuser", True)
        return self._create_user(email, password, **extra_fields)

    def get_by_natural_key(self, username):
        # E-mail addresses are matched without regard to case, as people type them.
        return self.get(email__iexact=username)


class User(AbstractBaseUser, PermissionsMixin):
    """A person who signs in with an e-mail address: customer, vendor staff or operator of the portal."""

    email = models.EmailField("e-mail address", unique=True)
    full_name = models.CharField(max_length=150, blank=True)
    is_staff = models.BooleanField(default=False, help_text="May sign in to the admin (vendor staff).")
    is_active = models.BooleanField(default=True)
    date_joined = models.DateTimeField(default=timezone.now)

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: list[str] = []

    class Meta:
        ordering = ["email"]

    def __str__(self):
        return self.full_name or self.email

    def get_full_name(self):
        return self.full_name or self.email

    def get_short_name(self):
        return self.full_name.split(" ")[0] if self.full_name else self.email

    @property
    def is_api_token(self):
        """An API token's account: it never signs in, is never a member and gets no e-mail."""
        return is_api_token_email(self.email)


class Organization(models.Model):
    """A customer company. Its members claim devices into its spaces."""

    code = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    name = models.CharField(max_length=150)
    connected_vendors = models.ManyToManyField(
        "vendors.Vendor",
        related_name="organizations",
        blank=True,
        help_text="The vendors this organization may claim devices from.",
    )
    two_factor_required = models.BooleanField(
        default=False, help_text="Members must sign in with a second factor to reach the organization."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


class Role(models.TextChoices):
    OWNER = "owner", "Owner"
    ADMIN = "admin", "Admin"
    OPERATOR = "operator", "Operator"
    VIEWER = "viewer", "Viewer"


class Membership(models.Model):
    """A user's role in one organization: viewers read, operators also operate devices,
    admins and owners also claim, move and release them."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.VIEWER)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "organization"], name="membership_unique_user_org"),
            models.CheckConstraint(condition=models.Q(role__in=Role.values), name="membership_role_valid"),
        ]
        ordering = ["organization__name", "user__email"]

    def __str__(self):
        return f"{self.user} in {self.organization} ({self.get_role_display()})"

    @property
    def can_operate(self):
        """Send commands and change configuration."""
        return self.role in (Role.OWNER, Role.ADMIN, Role.OPERATOR)

    @property
    def can_manage(self):
        """Claim, rename, move and release devices; manage spaces."""
        return self.role in (Role.OWNER, Role.ADMIN)


class InvitationQuerySet(models.QuerySet):
    def pending(self):
        return self.filter(accepted_at__isnull=True)


class Invitation(models.Model):
    """An invitation to join an organization with a role, sent to an e-mail address.

    The link in the e-mail carries this row's code, signed with a timestamp (accounts/members.py),
    so it expires without a sweeper and cannot be forged or guessed.
    """

    code = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="invitations")
    email = models.EmailField("e-mail address")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.VIEWER)
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    # The portal's address as the inviter reached it (scheme and host): the e-mailed link starts
    # with it, whichever task or sweep sends the e-mail.
    link_origin = models.CharField(max_length=200, blank=True)
    # When a sender took the invitation to e-mail it (accounts/members.py, deliver_invitation):
    # other senders leave it alone while that sender may still be at work.
    email_claimed_at = models.DateTimeField(null=True, blank=True)
    # How many times a sender took it: an address the mail server refuses for good is given up
    # after a few, instead of being tried by every sweep for the invitation's whole life.
    email_attempts = models.PositiveSmallIntegerField(default=0)
    # Set once the e-mail is sent, never before: an invitation without it is sent again by the sweep.
    email_sent_at = models.DateTimeField(null=True, blank=True)
    accepted_at = models.DateTimeField(null=True, blank=True)
    accepted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    objects = InvitationQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            # One pending invitation per address and organization: inviting again replaces it.
            models.UniqueConstraint(
                fields=["organization", "email"],
                condition=models.Q(accepted_at__isnull=True),
                name="invitation_one_pending_per_email",
            ),
            models.CheckConstraint(condition=models.Q(role__in=Role.values), name="invitation_role_valid"),
        ]

    def __str__(self):
        return f"{self.email} to {self.organization} ({self.get_role_display()})"


class AuditEntryQuerySet(models.QuerySet):
    def actor_emails(self, organization_id):
        """The distinct actors' e-mail addresses of an organization's log, in order, including former
        members'. A loose index scan (one index probe per actor) so it costs the same at any log size;
        MIN() rather than ORDER BY ... LIMIT 1 so that SQLite, the embedded default, runs it too."""
        with connection.cursor() as cursor:
            cursor.execute(
                f"""
                WITH RECURSIVE actors(email) AS (
                    SELECT MIN(actor_email) FROM {self.model._meta.db_table}
                    WHERE organization_id = %s AND actor_email > ''
                    UNION ALL
                    SELECT (SELECT MIN(actor_email) FROM {self.model._meta.db_table}
                            WHERE organization_id = %s AND actor_email > actors.email)
                    FROM actors WHERE actors.email IS NOT NULL
                )
                SELECT email FROM actors WHERE email IS NOT NULL
                """,  # noqa: S608 - the table name is the model's, the values are parameters
                [organization_id, organization_id],
            )
            return [email for (email,) in cursor.fetchall()]

    def actor_choices(self, organization_id):
        """(e-mail, label) of the log's actors (see actor_emails): an API token's account is labelled
        with its name, as the log shows it (AuditEntry.actor_label), not its made-up address."""
        emails = self.actor_emails(organization_id)
        token_emails = [email for email in emails if is_api_token_email(email)]
        names = (
            dict(User.objects.filter(email__in=token_emails).values_list("email", "full_name")) if token_emails else {}
        )
        return [(email, names.get(email) or email) for email in emails]


class AuditEntry(models.Model):
    """One line of an organization's audit log: who did what to which object, and when.

    Written only by accounts.audit.record_audit. The actor's e-mail is copied so that the
    line still says who it was after the account is deleted.
    """

    class Action(models.TextChoices):
        DEVICE_CLAIMED = "device_claimed", "Device claimed"
        DEVICE_MOVED = "device_moved", "Device moved"
        DEVICE_RENAMED = "device_renamed", "Device renamed"
        DEVICE_RELEASED = "device_released", "Device released"
        DEVICE_KEY_RESET = "device_key_reset", "Device key reset"
        COMMAND_SENT = "command_sent", "Command sent"
        CONFIGURATION_CHANGED = "configuration_changed", "Configuration changed"
        SPACE_CREATED = "space_created", "Space created"
        SPACE_RENAMED = "space_renamed", "Space renamed"
        SPACE_DELETED = "space_deleted", "Space deleted"
        MEMBER_INVITED = "member_invited", "Member invited"
        INVITATION_WITHDRAWN = "invitation_withdrawn", "Invitation withdrawn"
        MEMBER_JOINED = "member_joined", "Member joined"
        ROLE_CHANGED = "role_changed", "Role changed"
        MEMBER_REMOVED = "member_removed", "Member removed"
        MEMBER_LEFT = "member_left", "Member left"
        API_TOKEN_CREATED = "api_token_created", "API token created"
        API_TOKEN_REVOKED = "api_token_revoked", "API token revoked"
        WEBHOOK_ADDED = "webhook_added", "Webhook added"
        WEBHOOK_CHANGED = "webhook_changed", "Webhook changed"
        WEBHOOK_REMOVED = "webhook_removed", "Webhook removed"
        WEBHOOK_DISABLED = "webhook_disabled", "Webhook disabled"
        RELEASE_REQUESTED = "release_requested", "Release requested"
        RELEASE_REQUEST_DECLINED = "release_request_declined", "Release request declined"
        TWO_FACTOR_REQUIRED = "two_factor_required", "Two-factor authentication required"
        TWO_FACTOR_NOT_REQUIRED = "two_factor_not_required", "Two-factor authentication no longer required"

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="audit_entries")
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    actor_email = models.EmailField(blank=True)
    action = models.CharField(max_length=32, choices=Action.choices)
    target = models.CharField(max_length=200, help_text="What the action was done to, as the user saw it.")
    details = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    objects = AuditEntryQuerySet.as_manager()

    class Meta:
        verbose_name_plural = "audit entries"
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["organization", "-created_at"], name="auditentry_org_time"),
            # The actor filter, and the loose index scan listing the actors.
            models.Index(fields=["organization", "actor_email", "-created_at"], name="auditentry_org_actor_time"),
        ]

    def __str__(self):
        return f"{self.get_action_display()}: {self.target}"

    @property
    def actor_label(self):
        """Who acted, as the log shows it: the e-mail address, an API token's name, or "system"."""
        if not self.actor_email:
            return "system"
        if is_api_token_email(self.actor_email) and self.actor is not None:
            return self.actor.full_name
        return self.actor_email


class UserSession(AbstractBaseSession):
    """A session (portal/sessions.py keeps them), with whose it is and where it was last used: the
    index that lets a person see their signed-in sessions and end them. Filled in from the
    session's own data on each save (portal/sessions.SessionStore.create_model_instance)."""

    # No database constraint: a session saved after its user was deleted must not fail the request.
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.CASCADE, db_constraint=False, related_name="sessions"
    )
    user_agent = models.CharField(max_length=300, blank=True)
    ip = models.GenericIPAddressField(null=True)
    last_used_at = models.DateTimeField(null=True)

    class Meta:
        indexes = [models.Index(fields=["user", "expire_date"])]

    @classmethod
    def get_session_store_class(cls):
        from portal.sessions import SessionStore

        return SessionStore
