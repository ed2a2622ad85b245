"""Device activation: the request, its processing by a Celery task, and device authentication.

The activation rule lives in `process_activations`; the task drains waiting operations through it,
and the API view, the sweeper and the tests start operations and ring for them through the
functions here. The operation row in PostgreSQL is the state and the result; the broker is only
a doorbell.
"""

import functools
import json
import logging
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import timedelta

import redis
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from django.utils import timezone

from vendors.attestation import attestation_message, b64url_decode, b64url_encode, signature_is_valid
from vendors.identifiers import Normalization, normalize
from vendors.models import (
    ApprovedIdentity,
    Attestation,
    ClaimingMethod,
    DeviceModel,
    IdentifierField,
    ProductionBatch,
    Vendor,
)

from . import tasks
from .actions import record_activations
from .claims import InvalidIdentifier, normalize_identifiers
from .keys import InvalidPublicKey, derive_device_key, hash_device_key, key_matches, public_bytes, shared_secret
from .models import ActivationOperation, Device

logger = logging.getLogger(__name__)

STUCK_AFTER = timedelta(seconds=30)
KEEP_FINISHED = timedelta(days=7)
SWEEP_BATCH = 1000
# Operations processed per transaction, how long one task keeps taking batches, and how long it
# waits for more when a batch was not full.
BATCH_SIZE = 50
DRAIN_SECONDS = 10
BATCH_LINGER = 0.02
DOORBELL_KEY = "activation-doorbell"
# How long the flag that a processing task is on its way can stand; if that message is lost, the
# next request after this rings again (and the sweeper regardless).
DOORBELL_SECONDS = 10
MODEL_CACHE_SECONDS = 10
_model_cache = {}
# What processing an operation writes: writing only these spares re-sending the request's columns.
FINISHED_FIELDS = ["status", "error_code", "error_message", "device", "server_public_key", "finished_at"]

Error = ActivationOperation.Error


class ActivationRefused(Exception):
    """The operation fails with `code` (one of ActivationOperation.Error) and a message for the device's maker."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class ActivationRequest:
    """A well-formed activation request (the API checked its shape; the task checks its meaning)."""

    vendor: str
    model: str
    identifiers: dict
    public_key: str
    attestation: dict | None = None

    def identity_key(self):
        """The unit the request is about, for the per-identity rate limit; separators and case do not matter."""
        values = "/".join(
            f"{key}={normalize(value, Normalization.COMPACT).replace(':', '')}"
            for key, value in sorted(self.identifiers.items())
        )
        return f"{self.vendor.lower()}/{self.model.lower()}/{values}"


# Starting an operation and waking the one who waits for it.


def start_activation(request: ActivationRequest) -> ActivationOperation:
    """Record the activation request (status assigning) and ring the doorbell once the row is committed.

    If the broker is down the request is still accepted: the sweeper rings again later.
    """
    operation = ActivationOperation(
        vendor_slug=request.vendor,
        model_slug=request.model,
        identifiers=request.identifiers,
        device_public_key=request.public_key,
        attestation=request.attestation,
    )
    _insert_operation(operation)
    transaction.on_commit(ring_doorbell)
    return operation


# Every activation of a burst inserts its operation here, in the web process, with one plain
# statement: saving through the ORM took longer than PostgreSQL takes to run it. The model's
# fields still prepare the values, as the ORM would.


def _insert_operation(operation):
    meta = ActivationOperation._meta
    columns = ", ".join(field.column for field in meta.concrete_fields)
    placeholders = ", ".join(["%s"] * len(meta.concrete_fields))
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {meta.db_table} ({columns}) VALUES ({placeholders})",  # noqa: S608
            _prepared(operation, meta.concrete_fields),
        )


def _prepared(operation, fields):
    return [field.get_db_prep_save(getattr(operation, field.attname), connection) for field in fields]


def ring_doorbell():
    """Make sure a worker will look for waiting operations soon: send the processing task, unless
    one is already due. A broker failure is logged, not raised (the sweeper rings again).

    A burst of activations would otherwise send one message per request, and the worker's work per
    message outweighed the activation itself. The Redis flag says "a task is on its way or at work";
    the task clears it once it finds nothing waiting and then looks once more
    (process_waiting_activations), so an operation committed before that look is found by it, and
    one committed after rings again.
    """
    client = _redis()
    try:
        if client is not None and not client.set(DOORBELL_KEY, 1, nx=True, ex=DOORBELL_SECONDS):
            return
        _send_processing_task()
    except Exception:
        logger.warning("Could not ring the activation doorbell; the sweeper will ring again", exc_info=True)


def _send_processing_task():
    tasks.process_activations_task.apply_async(retry=False)


@functools.cache
def _redis():
    """One Redis client (a connection pool) per process: rate-limit counters and finished-operation announcements."""
    return redis.Redis.from_url(settings.REDIS_URL) if settings.REDIS_URL else None


def _finished_key(operation_id):
    return f"activation-finished:{operation_id}"


def _announce_finished(results):
    """Hand finished operations' answers (ActivationOperation.to_dict) to the devices waiting with
    `?wait=N`, if any, in one round trip."""
    client = _redis()
    if client is None or not results:
        return
    pipe = client.pipeline(transaction=False)
    for result in results:
        key = _finished_key(result["operation_id"])
        pipe.rpush(key, json.dumps(result)).expire(key, 60)
    try:
        pipe.execute()
    except redis.RedisError:
        logger.warning("Could not announce %d finished activations; waiters fall back to polling", len(results))


def wait_for_activation(operation_id, seconds: float) -> dict:
    """The operation's answer (ActivationOperation.to_dict) once finished, or as it is after
    `seconds` (the `?wait=N` of the API).

    Blocks on a Redis list to which the task pushes the answer once committed, reading the row
    at least once a second instead, so a lost announcement costs at most that second.
    """
    deadline = time.monotonic() + seconds
    client = _redis()
    while True:
        step = min(deadline - time.monotonic(), 1.0)
        if step > 0:
            try:
                if client is None:
                    raise redis.RedisError("no Redis configured")
                announced = client.blpop([_finished_key(operation_id)], timeout=step)
            except redis.RedisError:
                announced = None
                time.sleep(min(step, 0.2))
            if announced is not None:
                return json.loads(announced[1])
        result = ActivationOperation.objects.select_related("device").get(pk=operation_id).to_dict()
        if result["status"] != ActivationOperation.Status.ASSIGNING or deadline <= time.monotonic():
            return result


# Processing: the activation rule, applied to a batch of operations at a time.


def process_waiting_activations(time_budget: float = DRAIN_SECONDS) -> int:
    """Process the operations waiting, batch after batch, until none is left or `time_budget`
    seconds have passed (then send a task to go on, so a long burst never hits a task time limit).
    Returns how many operations finished.

    The doorbell flag stays set while this drains, so the requests of a burst send no messages
    (see ring_doorbell); it is cleared once a look finds nothing waiting, and then this looks once
    more. An operation committed meanwhile is found by that look, or committed after the flag was
    cleared and rang again. Several of these may run at once: each takes the rows no other holds,
    and each that meets a backlog asks for one more.
    """
    stop_at = time.monotonic() + time_budget
    broken, finished, doorbell_set, helped = set(), 0, True, False
    while True:
        done, taken = _process_batch(broken)
        finished += done
        if taken < BATCH_SIZE and not doorbell_set:  # the last look found no more than a batch
            return finished
        if taken == BATCH_SIZE and not helped:
            # A backlog: ask for one more drain. Each spends much of its time waiting on PostgreSQL,
            # so a few in parallel go faster; a helper that finds the backlog gone ends at once.
            _send_processing_task()
            helped = True
        if taken == 0:
            _clear_doorbell()
            doorbell_set = False
        elif time.monotonic() > stop_at:
            _send_processing_task()
            return finished
        elif taken < BATCH_SIZE:
            # Let the burst's next requests commit: fewer, fuller batches for a moment's latency.
            time.sleep(BATCH_LINGER)


def _process_batch(broken):
    """Process a batch of waiting operations; returns how many finished and how many were taken.

    A batch that fails on an unexpected error is rolled back and processed again one operation at
    a time, so one bad operation cannot hold up the others: it is logged, added to `broken` (not
    taken again by this drain) and left assigning for the sweeper.
    """
    try:
        batch = process_activations(exclude=broken, limit=BATCH_SIZE)
        return len(batch), len(batch)
    except Exception:
        logger.warning("An activation batch failed; processing it one operation at a time", exc_info=True)
    operation_ids = _waiting_ids(exclude=broken)
    finished = 0
    for operation_id in operation_ids:
        try:
            finished += len(process_activations([operation_id]))
        except Exception:
            logger.exception("Activation %s failed; the sweeper will try it again", operation_id)
            broken.add(operation_id)
    return finished, len(operation_ids)


def _clear_doorbell():
    client = _redis()
    if client is not None:
        try:
            client.delete(DOORBELL_KEY)
        except redis.RedisError:
            logger.warning("Could not clear the activation doorbell; it expires on its own", exc_info=True)


def process_activations(operation_ids=None, *, exclude=(), limit: int = BATCH_SIZE) -> list[ActivationOperation]:
    """Process activation operations that are still assigning, all in one transaction: those of
    `operation_ids`, or else up to `limit` of those waiting longest. Returns them, finished.

    For each, checks in order: the vendor's model exists (unknown_model), the identifiers are on its
    approved list (not_approved) and not withdrawn (revoked), the factory signature when the model
    requires one (attestation_failed), the device's public key (invalid_public_key), and that the unit
    has not activated already unless its re-activation window is open (already_activated; of two
    operations for one unit in a batch, the first wins). Then derives the device key and stores only
    its hash (record_activations) and the server's public key.

    The batch runs a fixed handful of statements whatever its size: one to look its units up, one
    to create-or-lock their devices, and pipelined writes. Idempotent: each operation row is locked,
    rows another worker holds are skipped, and only an operation still assigning is processed, so
    running twice, or being killed and re-run, leaves one key and one event. Once committed, the
    results are announced to devices waiting with `?wait=N`.
    """
    with transaction.atomic():
        operations = _lock_waiting(operation_ids, exclude, limit)
        now = timezone.now()
        checked = _check_requests(operations)
        passed = [request for request in checked.values() if isinstance(request, _CheckedRequest)]
        devices = Device.objects.create_or_lock({request.identity_id: request.device_model.pk for request in passed})
        new_keys = {}
        for operation in operations:
            try:
                request = checked[operation.pk]
                if isinstance(request, ActivationRefused):
                    raise request
                device = devices[request.identity_id]
                _check_may_activate(device, now, activated_in_batch=device in new_keys)
            except ActivationRefused as refusal:
                operation.status = ActivationOperation.Status.FAILED
                operation.error_code = refusal.code
                operation.error_message = refusal.message[:300]
            else:
                new_keys[device] = hash_device_key(derive_device_key(request.secret, operation.pk, device.code))
                operation.device = device
                operation.status = ActivationOperation.Status.ASSIGNED
                operation.server_public_key = b64url_encode(public_bytes(request.server_private_key))
            operation.finished_at = now
        record_activations(new_keys, at=now, locked=True)
        _save_finished(operations)
        results = [operation.to_dict() for operation in operations]
        transaction.on_commit(lambda: _announce_finished(results))
    return operations


# The statements every batch runs, written out: the ORM took several times as long to build them
# as PostgreSQL takes to run them. raw() still converts the JSON columns.


def _lock_waiting(operation_ids, exclude, limit):
    """Operations still assigning (those of `operation_ids`, or the longest waiting), locked until
    the transaction ends; rows another transaction holds are skipped."""
    meta = ActivationOperation._meta
    pk = meta.pk
    sql = f"SELECT * FROM {meta.db_table} WHERE status = %s"  # noqa: S608 - the table name is the model's
    params = [ActivationOperation.Status.ASSIGNING]
    if operation_ids is not None:
        ids = [pk.get_db_prep_value(uuid.UUID(str(value)), connection) for value in operation_ids]
        sql += f" AND id IN ({', '.join(['%s'] * len(ids))})" if ids else " AND 1 = 0"
        params += ids
    if exclude:
        sql += f" AND id NOT IN ({', '.join(['%s'] * len(exclude))})"
        params += [pk.get_db_prep_value(value, connection) for value in exclude]
    sql += " ORDER BY sent_at LIMIT %s"
    params.append(limit)
    if connection.features.has_select_for_update_skip_locked:
        sql += " FOR UPDATE SKIP LOCKED"
    return list(ActivationOperation.objects.raw(sql, params))


def _waiting_ids(exclude):
    """The ids of the operations still assigning that no other transaction holds (a batch's, after it failed)."""
    return [operation.pk for operation in _lock_waiting(None, exclude, BATCH_SIZE)]


def _save_finished(operations):
    """Write the results of finished operations, one statement each, sent in one pipeline."""
    if not operations:
        return
    meta = ActivationOperation._meta
    fields = [meta.get_field(name) for name in FINISHED_FIELDS]
    assignments = ", ".join(f"{field.column} = %s" for field in fields)
    sql = f"UPDATE {meta.db_table} SET {assignments} WHERE {meta.pk.column} = %s"  # noqa: S608
    rows = [[*_prepared(op, fields), meta.pk.get_db_prep_value(op.pk, connection)] for op in operations]
    with connection.cursor() as cursor:
        cursor.executemany(sql, rows)


def _device_model(vendor_slug, model_slug):
    """The model with its vendor and identifier fields, remembered by this process for a few seconds.

    Every activation of a burst asks for the same few models; an admin change (attestation,
    identifier fields) applies within MODEL_CACHE_SECONDS.
    """
    key = (vendor_slug, model_slug)
    cached = _model_cache.get(key)
    if cached is not None and cached[0] > time.monotonic():
        return cached[1]
    device_model = (
        DeviceModel.objects.select_related("vendor", "claiming_method")
        .prefetch_related("claiming_method__fields")
        .filter(vendor__slug=vendor_slug, slug=model_slug)
        .first()
    )
    _model_cache[key] = (time.monotonic() + MODEL_CACHE_SECONDS, device_model)
    return device_model


@receiver([post_save, post_delete], sender=DeviceModel)
@receiver([post_save, post_delete], sender=Vendor)
@receiver([post_save, post_delete], sender=ClaimingMethod)
@receiver([post_save, post_delete], sender=IdentifierField)
def _forget_models(**kwargs):
    """A model definition changed in this process: do not wait for the cache to expire."""
    _model_cache.clear()


@dataclass(frozen=True)
class _CheckedRequest:
    """An operation that passed every check that comes before its device's, and what activating it needs."""

    device_model: DeviceModel
    identity_id: int
    server_private_key: X25519PrivateKey
    secret: bytes


def _check_requests(operations) -> dict:
    """Each operation's _CheckedRequest, or the ActivationRefused it fails with, by operation id.

    Looks the units of all the operations up together (_approved_identities).
    """
    checked, named = {}, []
    for operation in operations:
        try:
            device_model = _device_model(operation.vendor_slug, operation.model_slug)
            if device_model is None:
                raise ActivationRefused(
                    Error.UNKNOWN_MODEL,
                    f"There is no model {operation.model_slug!r} of vendor {operation.vendor_slug!r}.",
                )
            named.append((operation, device_model, _normalized_identifiers(device_model, operation.identifiers)))
        except ActivationRefused as refusal:
            checked[operation.pk] = refusal
    identities = _approved_identities([(device_model, columns) for _, device_model, columns in named])
    for (operation, device_model, columns), identity in zip(named, identities, strict=True):
        try:
            checked[operation.pk] = _check_unit(operation, device_model, columns, identity)
        except ActivationRefused as refusal:
            checked[operation.pk] = refusal
    return checked


def _not_approved(device_model):
    return f"This unit is not on {device_model.vendor.name}'s approved list for {device_model.name}."


def _normalized_identifiers(device_model, identifiers):
    """The identifiers as the approved list stores them ({column: value}), if they are the model's."""
    expected = {field.key for field in device_model.claiming_method.ordered_fields()}
    if set(identifiers) != expected:
        raise ActivationRefused(
            Error.NOT_APPROVED,
            f"{device_model.name} is identified by {', '.join(sorted(expected))}. {_not_approved(device_model)}",
        )
    try:
        return normalize_identifiers(device_model, identifiers)
    except InvalidIdentifier as exc:
        raise ActivationRefused(Error.NOT_APPROVED, f"{exc.message} {_not_approved(device_model)}") from exc


def _check_unit(operation, device_model, columns, identity):
    """The checks of one operation whose unit was looked up: approved, not revoked, attested, a usable key."""
    if identity is None:
        raise ActivationRefused(Error.NOT_APPROVED, _not_approved(device_model))
    identity_id, identity_status = identity
    if identity_status == ApprovedIdentity.Status.REVOKED:
        raise ActivationRefused(Error.REVOKED, f"{device_model.vendor.name} has withdrawn this unit.")
    if device_model.attestation == Attestation.FACTORY_SIGNATURE:
        _check_attestation(device_model, columns, operation.attestation)
    server_private_key = X25519PrivateKey.generate()
    try:
        secret = shared_secret(server_private_key, b64url_decode(operation.device_public_key))
    except (InvalidPublicKey, ValueError) as exc:
        raise ActivationRefused(Error.INVALID_PUBLIC_KEY, "The public key is not a usable X25519 public key.") from exc
    return _CheckedRequest(device_model, identity_id, server_private_key, secret)


def _check_may_activate(device, now, *, activated_in_batch):
    window_open = device.reactivation_allowed_until is not None and device.reactivation_allowed_until > now
    if activated_in_batch or (device.activated_at is not None and not window_open):
        raise ActivationRefused(
            Error.ALREADY_ACTIVATED,
            "This unit has activated already. After a factory reset its owner (or, unclaimed, the vendor) "
            "must allow re-activation.",
        )


def _approved_identities(wanted):
    """For each (device model, normalized {column: value}) of `wanted`, the (id, status) of the
    approved identity it names, or None. One query per model and set of identifier columns.

    Plain SQL, as in _lock_waiting; the column names are identifier_N, never input.
    """
    found = [None] * len(wanted)
    groups = defaultdict(list)
    for position, (device_model, columns) in enumerate(wanted):
        groups[device_model.pk, tuple(columns)].append(position)
    for (device_model_id, names), positions in groups.items():
        rows = ", ".join(["(" + ", ".join(["%s"] * (len(names) + 1)) + ")"] * len(positions))
        matches = " AND ".join(f"i.{name} = w.{name}" for name in names)
        sql = f"""
            WITH w (position, {", ".join(names)}) AS (VALUES {rows})
            SELECT w.position, i.id, i.status FROM w
            JOIN {ApprovedIdentity._meta.db_table} i ON i.device_model_id = %s AND {matches}
        """  # noqa: S608
        params = [value for position in positions for value in (position, *wanted[position][1].values())]
        with connection.cursor() as cursor:
            cursor.execute(sql, [*params, device_model_id])
            for position, identity_id, status in cursor.fetchall():
                found[int(position)] = (identity_id, status)
    return found


def _check_attestation(device_model, columns, attestation):
    failed = ActivationRefused(
        Error.ATTESTATION_FAILED,
        f"{device_model.name} must present a valid factory signature from a production batch that is not revoked.",
    )
    if not attestation:
        raise failed
    batch = ProductionBatch.objects.filter(device_model=device_model, name=attestation["batch"]).first()
    if batch is None or batch.is_revoked:
        raise failed
    values = [columns[field.column] for field in device_model.claiming_method.ordered_fields()]
    message = attestation_message(device_model.vendor.slug, device_model.slug, values)
    if not signature_is_valid(batch.public_key, message, attestation["signature"]):
        raise failed


# Housekeeping, run by Celery beat.


def resend_stuck_activations(now=None) -> int:
    """Ring the doorbell for operations left assigning for more than 30 s since it last rang for
    them, bypassing the Redis flag (the message it stands for may be lost).

    Covers a broker that was down when the request came, or a message lost with a worker. Returns how many.
    """
    now = now or timezone.now()
    stuck = ActivationOperation.objects.filter(
        pk__in=ActivationOperation.objects.filter(
            status=ActivationOperation.Status.ASSIGNING, sent_at__lt=now - STUCK_AFTER
        ).values("pk")[:SWEEP_BATCH]
    ).update(sent_at=now)
    if stuck:
        try:
            _send_processing_task()
        except Exception:
            logger.warning("Could not send the activation task; the next sweep tries again", exc_info=True)
    return stuck


def delete_finished_activations(now=None) -> int:
    """Delete operations that finished more than 7 days ago (their result has long been fetched)."""
    now = now or timezone.now()
    deleted, _ = ActivationOperation.objects.filter(finished_at__lt=now - KEEP_FINISHED).delete()
    return deleted


# Rate limits and device authentication.


def rate_limit_retry_after(*limits, window: int = 60) -> int | None:
    """Count one request against each (scope, subject, limit) in the current fixed window, in the
    shared cache, all in one round trip.

    Returns None while every count is within its limit, else the seconds until the window ends
    (for Retry-After).
    """
    now = time.time()
    window_start = int(now // window) * window
    keys = [f"ratelimit:{scope}:{subject}:{window_start}" for scope, subject, _ in limits]
    counts = _count(keys, ttl=window + 1)
    if all(count <= limit for count, (_, _, limit) in zip(counts, limits, strict=True)):
        return None
    return max(1, int(window_start + window - now + 0.999))


def _count(keys, ttl):
    """Increment shared counters that expire `ttl` seconds after they start; returns the new values.

    On Redis (the shared cache in production) one pipelined round trip; without Redis the
    embedded setup's database cache, which every process shares too.
    """
    client = _redis()
    if client is not None:
        pipe = client.pipeline(transaction=False)
        for key in keys:
            pipe.incr(key).expire(key, ttl, nx=True)
        try:
            return pipe.execute()[::2]
        except redis.RedisError:
            # Redis (also the broker) is down: accept the request rather than lose it; the sweeper sends it later.
            logger.warning("Rate limits are not counted: Redis is unreachable", exc_info=True)
            return [0] * len(keys)
    return [_count_in_cache(key, ttl) for key in keys]


def _count_in_cache(key, ttl):
    if cache.add(key, 1, timeout=ttl):
        return 1
    try:
        return cache.incr(key)
    except ValueError:  # expired between add and incr: a new window
        cache.set(key, 1, timeout=ttl)
        return 1


def authenticate_device(token: str) -> Device | None:
    """The device whose current key is `token` (base64url), or None.

    Missing, malformed, wrong and replaced keys and withdrawn units all answer None alike, so the
    API's 401 gives no hint of which it was.
    """
    try:
        device_key = b64url_decode(token)
    except ValueError:
        return None
    if len(device_key) != 32:
        return None
    # Plain SQL on purpose: every device API call starts here, and the ORM spent several times
    # longer building this query than PostgreSQL spends running it.
    sql = f"""
        SELECT d.id, d.code, d.status, d.online, d.key_hash,
               (SELECT i.status FROM {ApprovedIdentity._meta.db_table} i WHERE i.id = d.identity_id)
        FROM {Device._meta.db_table} d WHERE d.key_hash = %s
    """  # noqa: S608 - table names are the models', values are parameters
    with connection.cursor() as cursor:
        cursor.execute(sql, [hash_device_key(device_key)])
        row = cursor.fetchone()
    if row is None or not key_matches(device_key, row[4]) or row[5] != ApprovedIdentity.Status.APPROVED:
        return None
    pk, code, status, online, key_hash, _ = row
    # What the device API's views read; any other field loads on first access.
    values = [pk, uuid.UUID(str(code)), status, bool(online), key_hash]
    return Device.from_db(connection.alias, ["id", "code", "status", "online", "key_hash"], values)
