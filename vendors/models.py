import re
import uuid

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models
from django.utils import timezone

from .attestation import validate_ed25519_public_key
from .identifiers import MAX_IDENTIFIER_FIELDS, MAX_IDENTIFIER_LENGTH, Normalization, normalize


class Vendor(models.Model):
    """A manufacturer whose units customers claim. Its staff approve the units it ships."""

    name = models.CharField(max_length=150, unique=True)
    slug = models.SlugField(max_length=50, unique=True)
    support_email = models.EmailField(blank=True)
    support_url = models.URLField(blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    @property
    def support_contact(self):
        """What to tell a customer to reach this vendor's support."""
        return self.support_email or self.support_url or f"{self.name} support"


def validate_pattern(value):
    try:
        re.compile(value)
    except re.error as exc:
        raise ValidationError(f"Not a valid regular expression: {exc}") from exc


class ClaimingMethod(models.Model):
    """What a customer types to prove they hold a unit: an ordered list of identifier fields.

    Methods are data, so a vendor defines a new one (IMEI, MEID, ...) in the admin.
    """

    name = models.CharField(max_length=100, unique=True)
    slug = models.SlugField(max_length=50, unique=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    def ordered_fields(self):
        """The identifier fields in the order they are asked for (and stored in)."""
        # Uses the prefetch cache when the caller prefetched `fields`.
        return sorted(self.fields.all(), key=lambda field: field.position)


class IdentifierField(models.Model):
    """One identifier a claiming method asks for, e.g. the MAC address on the device's back."""

    method = models.ForeignKey(ClaimingMethod, on_delete=models.CASCADE, related_name="fields")
    position = models.PositiveSmallIntegerField(
        help_text=f"Order in which the field is asked for, 1 to {MAX_IDENTIFIER_FIELDS}."
    )
    key = models.CharField(
        max_length=32,
        validators=[RegexValidator(r"^[a-z][a-z0-9_]*$", "Lower-case letters, digits and underscores.")],
        help_text="Name used in CSV headers and the device API, e.g. serial_number, mac_address, imei.",
    )
    label = models.CharField(max_length=64, help_text="What the customer sees, e.g. 'MAC address'.")
    help_text = models.CharField(
        max_length=200, blank=True, help_text="Where to find it, e.g. 'Printed on the back of the device'."
    )
    normalization = models.CharField(max_length=16, choices=Normalization.choices, default=Normalization.TEXT)
    pattern = models.CharField(
        max_length=200,
        validators=[validate_pattern],
        help_text="Regular expression the normalized value must match in full.",
    )
    format_hint = models.CharField(max_length=120, help_text="The expected format, e.g. '12 hex digits'.")

    class Meta:
        ordering = ["method", "position"]
        constraints = [
            models.UniqueConstraint(fields=["method", "position"], name="identifierfield_unique_position"),
            models.UniqueConstraint(fields=["method", "key"], name="identifierfield_unique_key"),
            models.CheckConstraint(
                condition=models.Q(position__gte=1, position__lte=MAX_IDENTIFIER_FIELDS),
                name="identifierfield_position_range",
            ),
        ]

    def __str__(self):
        return f"{self.method}: {self.label}"

    @property
    def column(self):
        """The ApprovedIdentity column holding this field's values."""
        return f"identifier_{self.position}"

    def clean_value(self, raw):
        """Normalize `raw` and check its format; raise ValidationError saying what is expected."""
        value = normalize(raw, self.normalization)
        if not value:
            raise ValidationError(f"Enter the {self.label}.", code="required")
        if len(value) > MAX_IDENTIFIER_LENGTH or not re.fullmatch(self.pattern, value):
            raise ValidationError(
                f"This is not a valid {self.label}: expected {self.format_hint}.", code="invalid_format"
            )
        return value


class Attestation(models.TextChoices):
    NONE = "none", "None: the identifiers alone"
    FACTORY_SIGNATURE = "factory_signature", "Factory signature (Ed25519, per production batch)"


class DeviceModel(models.Model):
    """A product a vendor ships, e.g. 'Acme Hub 2', and how its units are claimed."""

    vendor = models.ForeignKey(Vendor, on_delete=models.PROTECT, related_name="device_models")
    name = models.CharField(max_length=150)
    slug = models.SlugField(max_length=50)
    claiming_method = models.ForeignKey(ClaimingMethod, on_delete=models.PROTECT, related_name="device_models")
    heartbeat_interval = models.PositiveIntegerField(
        default=60, help_text="Seconds between heartbeats; a device is offline after twice this."
    )
    attestation = models.CharField(max_length=32, choices=Attestation.choices, default=Attestation.NONE)

    class Meta:
        ordering = ["vendor__name", "name"]
        constraints = [
            models.UniqueConstraint(fields=["vendor", "slug"], name="devicemodel_unique_slug_per_vendor"),
            models.UniqueConstraint(fields=["vendor", "name"], name="devicemodel_unique_name_per_vendor"),
            models.CheckConstraint(condition=models.Q(heartbeat_interval__gte=1), name="devicemodel_heartbeat_min"),
        ]

    def __str__(self):
        return self.name


class ApprovedIdentity(models.Model):
    """One unit a vendor approved for a model: a row of its serial list.

    The normalized identifier values sit in `identifier_1..3`, in the claiming method's field
    order, so that one row per unit imports at COPY speed and each value is unique within
    the model by a plain database index.
    """

    class Status(models.TextChoices):
        APPROVED = "approved", "Approved"
        REVOKED = "revoked", "Revoked"

    code = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    device_model = models.ForeignKey(DeviceModel, on_delete=models.PROTECT, related_name="approved_identities")
    identifier_1 = models.CharField(max_length=MAX_IDENTIFIER_LENGTH)
    identifier_2 = models.CharField(max_length=MAX_IDENTIFIER_LENGTH, null=True, blank=True)
    identifier_3 = models.CharField(max_length=MAX_IDENTIFIER_LENGTH, null=True, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.APPROVED)
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "approved identities"
        ordering = ["device_model", "identifier_1"]
        constraints = [
            models.UniqueConstraint(fields=["device_model", "identifier_1"], name="identity_unique_identifier_1"),
            models.UniqueConstraint(fields=["device_model", "identifier_2"], name="identity_unique_identifier_2"),
            models.UniqueConstraint(fields=["device_model", "identifier_3"], name="identity_unique_identifier_3"),
            models.CheckConstraint(
                condition=models.Q(status__in=["approved", "revoked"]), name="identity_status_valid"
            ),
        ]

    def __str__(self):
        return " / ".join(v for v in (self.identifier_1, self.identifier_2, self.identifier_3) if v)

    @property
    def identifiers(self):
        """{key: normalized value} in the claiming method's order."""
        return {field.key: getattr(self, field.column) for field in self.device_model.claiming_method.ordered_fields()}


class VendorStaff(models.Model):
    """Links a staff user to the one vendor they work for; the admin shows them only that vendor's data."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="vendor_staff")
    vendor = models.ForeignKey(Vendor, on_delete=models.CASCADE, related_name="staff")

    class Meta:
        verbose_name_plural = "vendor staff"

    def __str__(self):
        return f"{self.user} ({self.vendor})"


class ProductionBatch(models.Model):
    """A factory run of one model whose units carry an Ed25519 signature of their identifiers.

    Vendor staff register the batch's public key; the server holds no secret. Revoking a batch
    (a leaked factory key) makes every signature from it fail attestation.
    """

    device_model = models.ForeignKey(DeviceModel, on_delete=models.PROTECT, related_name="production_batches")
    name = models.CharField(max_length=64, help_text="What devices send as attestation.batch, e.g. '2026-W14'.")
    public_key = models.CharField(
        max_length=43,
        validators=[validate_ed25519_public_key],
        help_text="The batch's Ed25519 public key: 32 bytes, base64url without padding.",
    )
    revoked_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "production batches"
        ordering = ["device_model", "name"]
        constraints = [
            models.UniqueConstraint(fields=["device_model", "name"], name="productionbatch_unique_name_per_model"),
        ]

    def __str__(self):
        return f"{self.device_model}: {self.name}"

    @property
    def is_revoked(self):
        return self.revoked_at is not None

    def revoke(self, now=None):
        """Withdraw the batch's key (leaked, or the run was faulty): its signatures no longer attest anything."""
        if self.revoked_at is None:
            self.revoked_at = now or timezone.now()
            self.save(update_fields=["revoked_at"])
