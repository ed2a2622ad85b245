"""The plain statements of the activation path, written out in one place.

Every activation of a burst runs these; building them with the ORM took several times as long as
PostgreSQL takes to run them. The models' fields still prepare the values, as the ORM would, and
raw() still converts the JSON columns. Table and column names are the models', never input.
"""

import uuid
from collections import defaultdict

from django.db import connection

from vendors.models import ApprovedIdentity, ProductionBatch

from .models import ActivationOperation, UsedAttestationSignature

# What processing an operation writes: writing only these spares re-sending the request's columns.
FINISHED_FIELDS = [
    "status",
    "error_code",
    "error_message",
    "refusal_reason",
    "device",
    "server_public_key",
    "finished_at",
]


def insert_operation(operation: ActivationOperation) -> None:
    """INSERT the new operation row (the web process does this for every activation request)."""
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


def lock_waiting(operation_ids, exclude, limit) -> list[ActivationOperation]:
    """Operations still assigning (those of `operation_ids`, or the longest waiting), locked until
    the transaction ends; rows another transaction holds are skipped."""
    meta = ActivationOperation._meta
    pk = meta.pk
    sql = f"SELECT * FROM {meta.db_table} WHERE status = %s"  # noqa: S608
    params = [ActivationOperation.Status.ASSIGNING]
    if operation_ids is not None:
        ids = [pk.get_db_prep_value(uuid.UUID(str(value)), connection) for value in operation_ids]
        sql += f" AND id IN ({', '.join(['%s'] * len(ids))})" if ids else " AND 1 = 0"
        params += ids
    if exclude:
        sql += f" AND id NOT IN ({', '.join(['%s'] * len(exclude))})"
        params += [pk.get_db_prep_value(value, connection) for value in exclude]
    sql += " ORDER BY sent_at"
    if limit is not None:
        sql += " LIMIT %s"
        params.append(limit)
    if connection.features.has_select_for_update_skip_locked:
        sql += " FOR UPDATE SKIP LOCKED"
    return list(ActivationOperation.objects.raw(sql, params))


def save_finished(operations) -> None:
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


def approved_identities(wanted) -> list[tuple[int, str, str] | None]:
    """For each (device model, normalized {column: value}) of `wanted`, the (id, status, claim code
    hash) of the approved identity it names, or None. One query per model and set of identifier columns: the
    batch's units are a VALUES list joined to the serial list."""
    found = [None] * len(wanted)
    groups = defaultdict(list)
    for position, (device_model, columns) in enumerate(wanted):
        groups[device_model.pk, tuple(columns)].append(position)
    for (device_model_id, names), positions in groups.items():
        rows = ", ".join(["(" + ", ".join(["%s"] * (len(names) + 1)) + ")"] * len(positions))
        matches = " AND ".join(f"i.{name} = w.{name}" for name in names)
        sql = f"""
            WITH w (position, {", ".join(names)}) AS (VALUES {rows})
            SELECT w.position, i.id, i.status, i.claim_code_hash FROM w
            JOIN {ApprovedIdentity._meta.db_table} i ON i.device_model_id = %s AND {matches}
        """  # noqa: S608
        params = [value for position in positions for value in (position, *wanted[position][1].values())]
        with connection.cursor() as cursor:
            cursor.execute(sql, [*params, device_model_id])
            for position, *identity in cursor.fetchall():
                found[int(position)] = tuple(identity)
    return found


def production_batches(wanted) -> dict:
    """The batches named by `wanted`, a set of (device model id, batch name): {(device model id,
    name): (public key, revoked)}, in one query whatever the number."""
    if not wanted:
        return {}
    wanted = sorted(wanted)
    rows = ", ".join(["(%s, %s)"] * len(wanted))
    sql = f"""
        WITH w (device_model_id, name) AS (VALUES {rows})
        SELECT b.device_model_id, b.name, b.public_key, b.revoked_at IS NOT NULL
        FROM {ProductionBatch._meta.db_table} b JOIN w ON b.device_model_id = w.device_model_id AND b.name = w.name
    """  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(sql, [value for pair in wanted for value in pair])
        return {(model_id, name): (public_key, bool(revoked)) for model_id, name, public_key, revoked in cursor}


def claim_signatures(signature_hashes, at) -> set:
    """Record request signatures as used, in one statement; returns those that were not used yet
    (INSERT ... ON CONFLICT DO NOTHING RETURNING). Of two transactions claiming one signature, the
    second waits for the first and gets nothing back if it commits."""
    if not signature_hashes:
        return set()
    meta = UsedAttestationSignature._meta
    used_at = connection.ops.adapt_datetimefield_value(at)
    rows = ", ".join(["(%s, %s)"] * len(signature_hashes))
    sql = f"""
        INSERT INTO {meta.db_table} (signature_hash, used_at) VALUES {rows}
        ON CONFLICT (signature_hash) DO NOTHING RETURNING signature_hash
    """  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(sql, [value for signature_hash in signature_hashes for value in (signature_hash, used_at)])
        return {signature_hash for (signature_hash,) in cursor.fetchall()}
