import logging
import uuid

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator, URLValidator
from django.db import models
from django.db.models.functions import UUID4
from django.utils import timezone
from django.utils.functional import cached_property

from .attestation import MAX_BATCH_NAME, validate_ed25519_public_key
from .declarations import validate_command_declarations, validate_setting_declarations
from .identifiers import (
    MAX_IDENTIFIER_FIELDS,
    MAX_IDENTIFIER_LENGTH,
    Normalization,
    PatternError,
    compile_pattern,
    normalize,
    normalizer,
)

logger = logging.getLogger(__name__)


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

    def clean(self):
        # Customers of every organization are sent there: a web page, never a script or a download.
        if self.support_url:
            try:
                URLValidator(schemes=["http", "https"])(self.support_url)
            except ValidationError as exc:
                raise ValidationError(
                    {"support_url": "Enter a web address starting with https:// or http://."}
                ) from exc

    def has_units(self):
        """Whether any of its models has approved units: its slug is then fixed (units activate
        with it, factory signatures cover it, activation operations are filed under it)."""
        return self.pk is not None and ApprovedIdentity.objects.filter(device_model__vendor=self).exists()


def validate_pattern(value):
    try:
        compile_pattern(value)
    except PatternError as exc:
        raise ValidationError(
            f"Not a valid regular expression here: {exc}. The portal cannot run backreferences or "
            "lookarounds, nor repetitions of more than 1000."
        ) from exc


class ClaimingMethod(models.Model):
    """What a customer types to prove they hold a unit: an ordered list of identifier fields.

    Methods are data, so a vendor defines a new one (IMEI, MEID, ...) in the admin.
    """

    name = models.CharField(max_length=100, unique=True)
    slug = models.SlugField(max_length=50, unique=True)
    vendor = models.ForeignKey(
        Vendor,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="claiming_methods",
        help_text="The vendor that defined and may change this method; empty for the methods every vendor may use.",
    )
    requires_claim_code = models.BooleanField(
        default=False,
        help_text=(
            "Each unit also comes with an 11-digit claim code, a secret printed on its label and known to its "
            "firmware: customers type it to claim the unit, the unit sends it to activate. Without one, whoever "
            "reads the identifiers off a sticker can claim or activate the unit."
        ),
    )

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    def has_units(self):
        """Whether any model using this method has approved units: its slug and its fields' keys,
        order and normalization are then fixed (the stored columns follow that layout, serial
        lists and the device API name the fields by their keys)."""
        return self.pk is not None and ApprovedIdentity.objects.filter(device_model__claiming_method=self).exists()

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

    @cached_property
    def value_cleaner(self):
        """`clean_value` as a function of the raw value alone, set up once for the import's
        millions of calls: the normalization and the compiled pattern are looked up here."""
        normalize_value = normalizer(self.normalization)
        fullmatch = self._pattern_fullmatch()
        required = f"Enter the {self.label}."
        invalid = f"This is not a valid {self.label}: expected {self.format_hint}."

        def clean(raw):
            value = normalize_value(raw or "")
            if not value:
                raise ValidationError(required, code="required")
            # The length first: the pattern only ever sees a bounded value.
            if len(value) > MAX_IDENTIFIER_LENGTH or not fullmatch(value):
                raise ValidationError(invalid, code="invalid_format")
            return value

        return clean

    def clean_value(self, raw):
        """Normalize `raw` and check its format; raise ValidationError saying what is expected."""
        return self.value_cleaner(raw)

    def _pattern_fullmatch(self):
        """The format pattern's fullmatch function."""
        try:
            return compile_pattern(self.pattern).fullmatch
        except PatternError:
            # A pattern stored before patterns were checked with RE2 (validate_pattern) admits no
            # value until the vendor corrects it, rather than failing every claim of the model.
            logger.warning("Identifier field %s has a pattern RE2 cannot run: %r", self.pk, self.pattern)
            return lambda value: None


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
    command_declarations = models.JSONField(
        default=list,
        blank=True,
        validators=[validate_command_declarations],
        help_text='Commands the device accepts, e.g. [{"name": "reboot", "label": "Reboot", "arguments": []}].',
    )
    setting_declarations = models.JSONField(
        default=list,
        blank=True,
        validators=[validate_setting_declarations],
        help_text='Configuration settings, e.g. [{"key": "volume", "type": "integer", "min": 0, "max": 100}].',
    )

    class Meta:
        ordering = ["vendor__name", "name"]
        constraints = [
            models.UniqueConstraint(fields=["vendor", "slug"], name="devicemodel_unique_slug_per_vendor"),
            models.UniqueConstraint(fields=["vendor", "name"], name="devicemodel_unique_name_per_vendor"),
            models.CheckConstraint(condition=models.Q(heartbeat_interval__gte=1), name="devicemodel_heartbeat_min"),
        ]

    def __str__(self):
        return self.name

    def has_units(self):
        """Whether units of this model are approved: its slug is then fixed (units activate with
        it, factory signatures cover it)."""
        return self.pk is not None and self.approved_identities.exists()

    def command_declaration(self, name):
        """The declaration of the command called `name`, or None."""
        return next((c for c in self.command_declarations if c["name"] == name), None)

    def clean(self):
        # Approved identities store their values in the method's field order: another method
        # would read them as something else.
        if self.has_units():
            previous = DeviceModel.objects.filter(pk=self.pk).values_list("claiming_method_id", flat=True).first()
            if previous != self.claiming_method_id:
                raise ValidationError(
                    {"claiming_method": "This model already has approved units; its claiming method cannot change."}
                )


class ApprovedIdentityQuerySet(models.QuerySet):
    def revoke(self):
        """Revoke these units: they can no longer be claimed or activated. Returns how many changed."""
        return self.filter(status=ApprovedIdentity.Status.APPROVED).update(
            status=ApprovedIdentity.Status.REVOKED, revoked_at=timezone.now()
        )

    def reapprove(self):
        """Approve revoked units again. Returns how many changed."""
        return self.filter(status=ApprovedIdentity.Status.REVOKED).update(
            status=ApprovedIdentity.Status.APPROVED, revoked_at=None
        )

    def matching(self, term, *, device_model_ids):
        """Rows of those models with `term` as any of their identifiers, however it was typed
        (every normalization is tried). The explicit model ids let the database answer from the
        (model, identifier) unique indexes instead of scanning every unit."""
        candidates = {normalize(term, rule) for rule in Normalization.values} - {""}
        return self.filter(device_model_id__in=list(device_model_ids)).filter(
            models.Q(identifier_1__in=candidates)
            | models.Q(identifier_2__in=candidates)
            | models.Q(identifier_3__in=candidates)
        )


class ApprovedIdentity(models.Model):
    """One unit a vendor approved for a model: a row of its serial list.

    The normalized identifier values sit in `identifier_1..3`, in the claiming method's field
    order, so that one row per unit imports at COPY speed and each value is unique within
    the model by a plain database index.
    """

    class Status(models.TextChoices):
        APPROVED = "approved", "Approved"
        REVOKED = "revoked", "Revoked"

    # db_default: the import's COPY and INSERT ... SELECT leave the column to the database.
    code = models.UUIDField(default=uuid.uuid4, db_default=UUID4(), unique=True, editable=False)
    # No index of its own: the unique (device_model, identifier_N) indexes lead with it already,
    # and a serial list of a million rows should not maintain a fifth index.
    device_model = models.ForeignKey(
        DeviceModel, on_delete=models.PROTECT, related_name="approved_identities", db_index=False
    )
    identifier_1 = models.CharField(max_length=MAX_IDENTIFIER_LENGTH)
    identifier_2 = models.CharField(max_length=MAX_IDENTIFIER_LENGTH, null=True, blank=True)
    identifier_3 = models.CharField(max_length=MAX_IDENTIFIER_LENGTH, null=True, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.APPROVED)
    # HMAC-SHA256 of the unit's claim code (vendors/claim_codes.py), for methods that require one.
    claim_code_hash = models.CharField(max_length=64, blank=True, default="", db_default="", editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = ApprovedIdentityQuerySet.as_manager()

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
    """A factory run of one model whose units each carry a key pair of their own, certified by the
    batch's Ed25519 key (vendors/attestation.py).

    Vendor staff register the batch's public key; the server holds no secret. Revoking a batch
    (a leaked factory key) makes every certificate from it fail attestation.
    """

    device_model = models.ForeignKey(DeviceModel, on_delete=models.PROTECT, related_name="production_batches")
    name = models.CharField(
        max_length=MAX_BATCH_NAME, help_text="What devices send as attestation.batch, e.g. '2026-W14'."
    )
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


class ImportJobQuerySet(models.QuerySet):
    def update(self, **fields):
        # Every change to a job is a sign of life the sweeper (vendors/imports.py) relies on.
        fields.setdefault("updated_at", timezone.now())
        return super().update(**fields)


class ImportJob(models.Model):
    """One upload of a serial list for a model: validated into the staging table, then imported
    all at once or not at all (vendors/imports.py). The database row is the source of truth for
    where the import stands, so a task that died is simply sent again."""

    class Status(models.TextChoices):
        PENDING = "pending", "Waiting to be validated"
        VALIDATING = "validating", "Validating"
        VALIDATED = "validated", "Validated: waiting for a decision"
        IMPORTING = "importing", "Importing"
        IMPORTED = "imported", "Imported"
        FAILED = "failed", "Refused"
        CANCELLED = "cancelled", "Cancelled"

    code = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    device_model = models.ForeignKey(DeviceModel, on_delete=models.CASCADE, related_name="import_jobs")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    file = models.FileField(upload_to="imports/%Y/%m/", blank=True)
    source_name = models.CharField(max_length=255, help_text="The uploaded file's name.")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    progress = models.PositiveSmallIntegerField(default=0, help_text="Per cent of the file validated.")
    rows_total = models.PositiveIntegerField(default=0)
    rows_bad = models.PositiveIntegerField(default=0)
    rows_imported = models.PositiveIntegerField(default=0)
    problem = models.TextField(blank=True, help_text="Why the whole file was refused, if it was.")
    bad_rows = models.JSONField(
        default=list, blank=True, help_text="The first bad rows: [{line, message}], in line order."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = ImportJobQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["status", "updated_at"], name="importjob_status_updated")]

    def __str__(self):
        return f"{self.source_name} → {self.device_model}"

    @property
    def rows_good(self):
        return self.rows_total - self.rows_bad

    @property
    def in_progress(self):
        return self.status in {self.Status.PENDING, self.Status.VALIDATING, self.Status.IMPORTING}


class ImportRow(models.Model):
    """Staging table: one normalized row of an import's file, or the reason it is bad.

    Filled with COPY on PostgreSQL (the table is UNLOGGED there), checked with set-based SQL,
    copied into ApprovedIdentity by one INSERT ... SELECT, then emptied.
    """

    pk = models.CompositePrimaryKey("job", "line")
    # No database constraint: COPY would check it for each of a million rows. The import
    # functions delete a job's rows themselves.
    job = models.ForeignKey(ImportJob, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+")
    line = models.PositiveIntegerField()
    identifier_1 = models.TextField(null=True)
    identifier_2 = models.TextField(null=True)
    identifier_3 = models.TextField(null=True)
    claim_code_hash = models.TextField(null=True)
    error = models.TextField(null=True, help_text="Why the row cannot be imported; empty for a good row.")

    def __str__(self):
        return f"line {self.line}"


class VendorAuditEntry(models.Model):
    """What happened to a vendor's units that its support staff may need to know later.

    Holds no customer data: no organization, device name or customer user, only the unit's
    identifiers, the vendor staff member who acted (if one did) and their reason.
    """

    class Action(models.TextChoices):
        FORCE_RELEASED = "force_released", "Force-released by vendor staff"
        RELEASED_BY_CUSTOMER = "released_by_customer", "Released by the customer"
        CLAIM_CODE_REISSUED = "claim_code_reissued", "Claim code re-issued"
        CLAIM_CODES_DOWNLOADED = "claim_codes_downloaded", "Claim codes downloaded (CSV)"
        LABEL_SHEET_DOWNLOADED = "label_sheet_downloaded", "Label sheet downloaded"

    vendor = models.ForeignKey(Vendor, on_delete=models.CASCADE, related_name="audit_entries")
    device_model = models.ForeignKey(DeviceModel, on_delete=models.CASCADE, related_name="+")
    identifiers = models.CharField(
        max_length=200, help_text="The unit's identifiers when it happened (for a download: the claim code issue)."
    )
    action = models.CharField(max_length=32, choices=Action.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="The vendor staff member who acted; empty when a customer did.",
    )
    reason = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "vendor audit log"
        indexes = [models.Index(fields=["vendor", "-created_at"], name="vendoraudit_vendor_time")]

    def __str__(self):
        return f"{self.get_action_display()}: {self.identifiers}"

    @classmethod
    def record_release(cls, device, *, actor, reason=""):
        """Log a device's release: by the vendor's staff (or a superuser), named with their reason,
        or by its customer, who is not named."""
        vendor_side = actor is not None and (actor.is_superuser or hasattr(actor, "vendor_staff"))
        return cls.objects.create(
            vendor_id=device.device_model.vendor_id,
            device_model_id=device.device_model_id,
            identifiers=str(device.identity)[:200],
            action=cls.Action.FORCE_RELEASED if vendor_side else cls.Action.RELEASED_BY_CUSTOMER,
            actor=actor if vendor_side else None,
            reason=reason.strip(),
        )


class ClaimCodeIssue(models.Model):
    """Claim codes the portal generated for some units (an import without a claim_code column, or a
    re-issue), offered to vendor staff once: the codes as CSV and a printable label sheet.

    The plaintext codes wait in a file encrypted with a key derived from SECRET_KEY
    (vendors/code_files.py), never in the database; the units hold only their codes' HMACs. Each
    download is taken once; the file is destroyed when every download offered was taken, or at
    `expires_at`. After that the codes can only be issued anew (vendors/code_issues.py).
    """

    class Status(models.TextChoices):
        STAGED = "staged", "Waiting for the import"
        READY = "ready", "Ready to download"
        DESTROYED = "destroyed", "Destroyed"

    class Reason(models.TextChoices):
        IMPORT = "import", "Generated for an imported serial list"
        REISSUE = "reissue", "Re-issued"

    code = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    device_model = models.ForeignKey(DeviceModel, on_delete=models.CASCADE, related_name="claim_code_issues")
    import_job = models.OneToOneField(
        ImportJob, on_delete=models.SET_NULL, null=True, blank=True, related_name="claim_code_issue"
    )
    reason = models.CharField(max_length=16, choices=Reason.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.STAGED)
    units = models.PositiveIntegerField(default=0, help_text="How many units' codes the file holds.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True, help_text="When the file is destroyed if not downloaded.")
    csv_downloaded_at = models.DateTimeField(null=True, blank=True)
    labels_downloaded_at = models.DateTimeField(null=True, blank=True)
    destroyed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["status", "expires_at"], name="claimcodeissue_status_expiry")]

    def __str__(self):
        return f"Claim codes of {self.units} {self.device_model} units ({self.get_reason_display().lower()})"
