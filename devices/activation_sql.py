"""The plain statements of the activation path, written out in one place.

Every activation of a burst runs these; building them with the ORM took several times as long as
PostgreSQL takes to run them. The models' fields still prepare the values, as the ORM would, and
raw() still converts the JSON columns. Table and column names are the models', never input.
"""

import uuid
from collections import defaultdict

from django.db import connection

from vendors.models import ApprovedIdentity

from .models import ActivationOperation

# What processing an operation writes: writing only these spares re-sending the request's columns.
FINISHED_FIELDS = ["status", "error_code", "error_message", "device", "server_public_key", "finished_at"]


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


def approved_identities(wanted) -> list[tuple[int, str] | None]:
    """For each (device model, normalized {column: value}) of `wanted`, the (id, status) of the
    approved identity it names, or None. One query per model and set of identifier columns: the
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
            SELECT w.position, i.id, i.status FROM w
            JOIN {ApprovedIdentity._meta.db_table} i ON i.device_model_id = %s AND {matches}
        """  # noqa: S608
        params = [value for position in positions for value in (position, *wanted[position][1].values())]
        with connection.cursor() as cursor:
            cursor.execute(sql, [*params, device_model_id])
            for position, identity_id, status in cursor.fetchall():
                found[int(position)] = (identity_id, status)
    return found
