import uuid
from datetime import timedelta

from django.apps import apps
from django.conf import settings
from django.db import connections, models
from django.utils import timezone


def online_condition(now, prefix=""):
    """Device.is_online() as a query condition (for counting in SQL); `prefix` reaches devices
    through a relation, e.g. "devices__" from a space.

    One threshold per device model, computed here rather than with interval arithmetic in SQL,
    which SQLite (the embedded default) cannot do.
    """
    device_model = apps.get_model("vendors", "DeviceModel")
    condition = models.Q(**{f"{prefix}pk__in": []})
    for model_id, interval in device_model.objects.values_list("pk", "heartbeat_interval"):
        condition |= models.Q(
            **{
                f"{prefix}device_model_id": model_id,
                f"{prefix}last_seen_at__gte": now - Device.offline_after(interval),
            }
        )
    return condition


def offline_condition(now, prefix=""):
    """Devices that have connected but are not online now (see online_condition); a claimed device
    that never connected is awaiting its first connection, not offline."""
    return models.Q(**{f"{prefix}activated_at__isnull": False}) & ~online_condition(now, prefix)


class DeviceQuerySet(models.QuerySet):
    def for_user(self, user):
        """Devices claimed by organizations `user` belongs to: the one way portal views look devices up."""
        if not user.is_authenticated:
            return self.none()
        return self.filter(organization__memberships__user=user)

    def with_related(self):
        """What every device list shows: model, vendor and space, in the same query."""
        return self.select_related("device_model__vendor", "space")

    def create_or_lock(self, units: dict) -> dict:
        """The devices of approved units ({identity id: device model id}), by identity id, with their
        rows locked until the transaction ends; a unit without one yet gets it (unregistered).
        Call it inside transaction.atomic().

        A device row appears on a unit's first claim or activation. One statement does both the
        creation and the lock (INSERT ... ON CONFLICT DO UPDATE ... RETURNING: the no-op update is
        what locks an existing row), so a claim and an activation racing for a unit's first row get
        the same row one after the other. Rows are locked in identity order, so two batches that
        share units cannot deadlock. SQLite has no row locks but lets one writer in at a time.
        """
        if not units:
            return {}
        connection = connections[self.db]
        code_field = self.model._meta.get_field("code")
        created_at = connection.ops.adapt_datetimefield_value(timezone.now())
        params = []
        for identity_id in sorted(units):
            code = code_field.get_db_prep_value(uuid.uuid4(), connection)
            params += [code, identity_id, units[identity_id], self.model.Status.UNREGISTERED, False, created_at]
        rows = ", ".join(["(%s, %s, %s, %s, '', '', %s, %s)"] * len(units))
        sql = f"""
            INSERT INTO {self.model._meta.db_table}
                (code, identity_id, device_model_id, status, name, key_hash, online, created_at)
            VALUES {rows}
            ON CONFLICT (identity_id) DO UPDATE SET identity_id = EXCLUDED.identity_id
            RETURNING *
        """  # noqa: S608 - the table name is the model's, values are parameters
        return {device.identity_id: device for device in self.raw(sql, params)}


class Device(models.Model):
    """The unit behind one ApprovedIdentity, and its place in the lifecycle:
    unregistered (never connected) -> registered (activated) -> claimed (in a space of an organization).

    A device may be claimed before it first connects. The database guarantees that a claimed
    device has exactly one organization and one space, and that the space is that organization's.
    """

    class Status(models.TextChoices):
        UNREGISTERED = "unregistered", "Unregistered"
        REGISTERED = "registered", "Registered"
        CLAIMED = "claimed", "Claimed"

    code = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    identity = models.OneToOneField("vendors.ApprovedIdentity", on_delete=models.PROTECT, related_name="device")
    device_model = models.ForeignKey("vendors.DeviceModel", on_delete=models.PROTECT, related_name="devices")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.UNREGISTERED)
    # No index of their own: device_org_status and device_space_name lead with them, and every
    # index more is one more entry to write on each activation and claim.
    organization = models.ForeignKey(
        "accounts.Organization",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="devices",
        db_index=False,
    )
    space = models.ForeignKey(
        "spaces.Space", on_delete=models.PROTECT, null=True, blank=True, related_name="devices", db_index=False
    )
    name = models.CharField(max_length=100, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    claimed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    activated_at = models.DateTimeField(null=True, blank=True)
    last_seen_at = models.DateTimeField(null=True, blank=True)
    # SHA-256 of the key derived at activation (hex). The key itself is never stored; empty when
    # the device has no key (never activated, released, or its key was reset).
    key_hash = models.CharField(max_length=64, blank=True)
    # The network address the activation that issued the current key came from (activated_at is when).
    key_issued_from = models.GenericIPAddressField(null=True, blank=True)
    # Set by "Allow re-activation" (after a factory reset): until then the unit may activate again.
    reactivation_allowed_until = models.DateTimeField(null=True, blank=True)
    # Kept by heartbeats and the connectivity sweep, so that went-offline / back-online
    # events are written once per change.
    online = models.BooleanField(default=False, db_default=False)
    applied_config_version = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = DeviceQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        indexes = [
            models.Index(fields=["space", "name"], name="device_space_name"),
            models.Index(fields=["organization", "status"], name="device_org_status"),
            # Device API authentication looks the device up by the hash of the key it presents.
            models.Index(fields=["key_hash"], name="device_key_hash", condition=~models.Q(key_hash="")),
        ]
        constraints = [
            models.CheckConstraint(
                condition=(
                    models.Q(status="claimed", organization__isnull=False, space__isnull=False)
                    | (
                        models.Q(status__in=["unregistered", "registered"])
                        & models.Q(organization__isnull=True, space__isnull=True)
                    )
                ),
                name="device_claimed_iff_in_space",
            ),
            # The composite foreign key (space, organization) -> space (id, organization) that
            # keeps a device out of another organization's space is added in migration 0002.
        ]

    def __str__(self):
        return self.name or str(self.identity)

    @property
    def has_key(self):
        """Whether the unit holds a key the device API accepts (released and reset devices do not)."""
        return bool(self.key_hash)

    @property
    def awaiting_first_connection(self):
        return self.status == self.Status.CLAIMED and self.activated_at is None

    @staticmethod
    def offline_after(heartbeat_interval):
        """How long after its last heartbeat a device of a model with `heartbeat_interval` (seconds)
        counts as offline: twice the interval, so that one lost heartbeat is not an outage.

        The one statement of the rule: the device page, the dashboards' counts (online_condition),
        the connectivity sweep and the uptime all ask here.
        """
        return timedelta(seconds=2 * heartbeat_interval)

    def is_online(self, now=None):
        """Online while its heartbeats arrive within offline_after (in SQL: online_condition)."""
        if self.last_seen_at is None:
            return False
        now = now or timezone.now()
        return now - self.last_seen_at <= self.offline_after(self.device_model.heartbeat_interval)


class DeviceEvent(models.Model):
    """One entry of a device's history. Deleted with the rest of the history on release."""

    class Kind(models.TextChoices):
        CLAIMED = "claimed", "Claimed"
        ACTIVATED = "activated", "Activated"
        MOVED = "moved", "Moved"
        RENAMED = "renamed", "Renamed"
        REACTIVATION_ALLOWED = "reactivation_allowed", "Re-activation allowed"
        KEY_RESET = "key_reset", "Device key reset"
        COMMAND_SENT = "command_sent", "Command sent"
        CONFIGURATION_CHANGED = "configuration_changed", "Configuration changed"
        WENT_OFFLINE = "went_offline", "Went offline"
        BACK_ONLINE = "back_online", "Back online"

    # No index of its own: deviceevent_device_time leads with it.
    device = models.ForeignKey(Device, on_delete=models.CASCADE, related_name="events", db_index=False)
    kind = models.CharField(max_length=32, choices=Kind.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    space = models.ForeignKey("spaces.Space", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    details = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["device", "-created_at"], name="deviceevent_device_time")]

    def __str__(self):
        return f"{self.get_kind_display()} at {self.created_at:%Y-%m-%d %H:%M}"


class Command(models.Model):
    """A command sent to a device, from queued to a final state reported by the device (or expired)."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        DELIVERED = "delivered", "Delivered"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        EXPIRED = "expired", "Expired"

    PENDING = (Status.QUEUED, Status.DELIVERED)

    code = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    device = models.ForeignKey(Device, on_delete=models.CASCADE, related_name="commands")
    name = models.CharField(max_length=32)
    arguments = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    output = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    delivered_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["device", "-created_at"], name="command_device_time"),
            models.Index(
                fields=["expires_at"], condition=models.Q(status__in=["queued", "delivered"]), name="command_pending"
            ),
        ]

    def __str__(self):
        return f"{self.name} ({self.get_status_display()})"

    @property
    def is_pending(self):
        return self.status in self.PENDING


class ConfigurationVersion(models.Model):
    """One saved configuration of a device; each save makes the next numbered version."""

    device = models.ForeignKey(Device, on_delete=models.CASCADE, related_name="configuration_versions")
    version = models.PositiveIntegerField()
    values = models.JSONField(default=dict)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-version"]
        constraints = [models.UniqueConstraint(fields=["device", "version"], name="configversion_unique_per_device")]

    def __str__(self):
        return f"v{self.version}"


class Heartbeat(models.Model):
    """One heartbeat's metrics (at most 32 finite numbers), kept HEARTBEAT_RETENTION_DAYS for the
    charts' latest points and the rollups (MetricRollup) that the charts read.

    On PostgreSQL the table is partitioned by day on received_at (devices/heartbeat_partitions.py):
    retention drops whole partitions. The primary key holds the partition key, as PostgreSQL requires
    of a unique index on a partitioned table, and lets a batched writer skip a row written twice.
    """

    pk = models.CompositePrimaryKey("device", "received_at")
    device = models.ForeignKey(Device, on_delete=models.CASCADE, related_name="heartbeats")
    received_at = models.DateTimeField(default=timezone.now)
    metrics = models.JSONField(default=dict)

    class Meta:
        indexes = [models.Index(fields=["received_at"], name="heartbeat_time")]

    def __str__(self):
        return f"heartbeat at {self.received_at:%Y-%m-%d %H:%M:%S}"


class MetricRollup(models.Model):
    """One metric of one device over one minute, hour or day: min, max, sum and count of its values.

    Built over closed intervals by devices/rollups.py, and kept longer than the heartbeats
    (ROLLUP_MINUTE_RETENTION_HOURS, ROLLUP_RETENTION_DAYS) so that a chart of any
    range reads a few hundred points. The metric "" (HEARTBEATS) counts the heartbeats themselves,
    with or without metrics: the uptime of long ranges is estimated from it.
    """

    HEARTBEATS = ""

    class Resolution(models.IntegerChoices):
        MINUTE = 60, "Minute"
        HOUR = 3600, "Hour"
        DAY = 86400, "Day"

    pk = models.CompositePrimaryKey("device", "resolution", "bucket_start", "metric")
    device = models.ForeignKey(Device, on_delete=models.CASCADE, related_name="metric_rollups")
    resolution = models.PositiveIntegerField(choices=Resolution.choices)
    bucket_start = models.DateTimeField()
    metric = models.CharField(max_length=64, blank=True)
    count = models.PositiveIntegerField()
    minimum = models.FloatField(null=True)
    maximum = models.FloatField(null=True)
    total = models.FloatField(null=True)

    class Meta:
        indexes = [models.Index(fields=["resolution", "bucket_start"], name="rollup_resolution_time")]

    def __str__(self):
        per = self.get_resolution_display().lower()
        return f"{self.metric or 'heartbeats'} per {per} at {self.bucket_start:%Y-%m-%d %H:%M}"


class RollupProgress(models.Model):
    """How far the rollups of one resolution are complete: every interval before `rolled_up_until`
    has its rows. A chart reads rollups before it and raw heartbeats after it."""

    resolution = models.PositiveIntegerField(primary_key=True, choices=MetricRollup.Resolution.choices)
    rolled_up_until = models.DateTimeField()

    def __str__(self):
        return f"{self.get_resolution_display()} rollups until {self.rolled_up_until:%Y-%m-%d %H:%M}"


class ActivationOperation(models.Model):
    """One activation request from a device, and its result: the row is the operation's state.

    Committed (status assigning) before the task that processes it is sent, so a lost message
    costs a delay, never a request: the sweeper re-sends what stays assigning. The server's
    private key and the derived device key are never stored; only the server's public key is.
    """

    class Status(models.TextChoices):
        ASSIGNING = "assigning", "Assigning"
        ASSIGNED = "assigned", "Assigned"
        FAILED = "failed", "Failed"

    class Error(models.TextChoices):
        """What the device is told (every failed proof is not_approved; refusal_reason says which)."""

        NOT_APPROVED = "not_approved", "Not approved"
        UNKNOWN_MODEL = "unknown_model", "Unknown model"
        ALREADY_ACTIVATED = "already_activated", "Already activated"
        INVALID_PUBLIC_KEY = "invalid_public_key", "Invalid public key"

    class Reason(models.TextChoices):
        """Why a proof failed precisely: for vendor staff in the admin, never for the device."""

        NOT_ON_LIST = "not_on_list", "Not on the approved list"
        WRONG_IDENTIFIER_FIELDS = "wrong_identifier_fields", "Not the model's identifier fields"
        INVALID_IDENTIFIER = "invalid_identifier", "An identifier has the wrong format"
        REVOKED = "revoked", "Unit withdrawn by the vendor"
        CLAIM_CODE_MISSING = "claim_code_missing", "Claim code missing"
        CLAIM_CODE_WRONG = "claim_code_wrong", "Wrong claim code"
        ATTESTATION_MISSING = "attestation_missing", "Attestation missing"
        UNKNOWN_BATCH = "unknown_batch", "Unknown production batch"
        BATCH_REVOKED = "batch_revoked", "Production batch revoked"
        CERTIFICATE_INVALID = "certificate_invalid", "Unit certificate does not verify or match"
        SIGNATURE_INVALID = "signature_invalid", "Request signature does not verify"
        SIGNATURE_STALE = "signature_stale", "signed_at too far from the server's clock"
        SIGNATURE_REPLAYED = "signature_replayed", "Request signature already used"

    # The operation id of the protocol; its 16 raw bytes are the HKDF salt.
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ASSIGNING)
    # The request as the device sent it (already checked for shape by the API).
    vendor_slug = models.CharField(max_length=50)
    model_slug = models.CharField(max_length=50)
    identifiers = models.JSONField()
    device_public_key = models.CharField(max_length=43)
    attestation = models.JSONField(null=True, blank=True)
    # HMAC of the claim code the request carried (vendors/claim_codes.py), never the code itself.
    claim_code_hash = models.CharField(max_length=64, blank=True, default="")
    client_address = models.GenericIPAddressField(null=True, blank=True)
    # The result.
    device = models.ForeignKey(Device, on_delete=models.CASCADE, null=True, blank=True, related_name="+")
    server_public_key = models.CharField(max_length=43, blank=True)
    error_code = models.CharField(max_length=32, choices=Error.choices, blank=True)
    error_message = models.CharField(max_length=300, blank=True)
    refusal_reason = models.CharField(max_length=32, choices=Reason.choices, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)
    # When the task was last sent for it: the sweeper re-sends operations left assigning too long after this.
    sent_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["sent_at"], name="activation_assigning_sent", condition=models.Q(status="assigning")),
            models.Index(fields=["finished_at"], name="activation_finished"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=(
                    models.Q(status="assigning", finished_at__isnull=True, error_code="")
                    | models.Q(status="assigned", finished_at__isnull=False, device__isnull=False, error_code="")
                    | (models.Q(status="failed", finished_at__isnull=False) & ~models.Q(error_code=""))
                ),
                name="activation_result_matches_status",
            ),
        ]

    def __str__(self):
        return f"{self.vendor_slug}/{self.model_slug} {self.id} ({self.status})"

    @property
    def finished(self):
        return self.status != self.Status.ASSIGNING

    def to_dict(self):
        """The operation as the device API answers it (docs/device-api.md, step 3)."""
        result = {"operation_id": str(self.pk), "status": self.status}
        if self.status == self.Status.ASSIGNED:
            # Not the device's status: no unauthenticated answer says whether a unit is claimed.
            result["device"] = {"id": str(self.device.code)}
            result["server_public_key"] = self.server_public_key
        elif self.status == self.Status.FAILED:
            result["error"] = {"code": self.error_code, "message": self.error_message}
        return result


class UsedAttestationSignature(models.Model):
    """A request signature of factory attestation that verified once: it never activates again.

    Kept a day (devices/activation_proofs.py), long after the clock check refuses a copy by itself.
    """

    # SHA-256 (hex) of the signature's raw bytes.
    signature_hash = models.CharField(max_length=64, primary_key=True)
    used_at = models.DateTimeField(default=timezone.now, db_index=True)

    def __str__(self):
        return self.signature_hash
