"""Device authentication: every device API call after activation presents its device key."""

import uuid

from django.db import connection

from vendors.attestation import b64url_decode
from vendors.models import ApprovedIdentity

from . import heartbeat_intake
from .keys import hash_device_key, key_matches
from .models import Device


def device_from_bearer(request, *, with_waiting=False) -> Device | None:
    """The device whose key the request presents (Authorization: Bearer <key>), or None."""
    scheme, _, token = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
    return authenticate_device(token.strip(), with_waiting=with_waiting) if scheme.lower() == "bearer" else None


def authenticate_device(token: str, *, with_waiting=False) -> Device | None:
    """The device whose current key is `token` (base64url), or None.

    Missing, malformed, wrong and replaced keys and withdrawn units all answer None alike, so the
    API's 401 gives no hint of which it was. With `with_waiting`, the same statement reads what
    waits for the device, as `device.waiting` (heartbeat_intake.waiting_from): a batched heartbeat
    then costs this one statement.
    """
    try:
        device_key = b64url_decode(token)
    except ValueError:
        return None
    if len(device_key) != 32:
        return None
    # Plain SQL on purpose: every device API call starts here, and the ORM spent several times
    # longer building this query than PostgreSQL spends running it. `key_hash <> ''` repeats the
    # key index's condition: a prepared statement's generic plan, which cannot see the value,
    # may use that partial index only then (and would otherwise scan every device).
    waiting, params = heartbeat_intake.waiting_columns() if with_waiting else ("", [])
    sql = f"""
        SELECT d.id, d.code, d.status, d.online, d.key_hash, d.organization_id, d.applied_config_version,
               (SELECT i.status FROM {ApprovedIdentity._meta.db_table} i WHERE i.id = d.identity_id)
               {", " + waiting if waiting else ""}
        FROM {Device._meta.db_table} d WHERE d.key_hash = %s AND d.key_hash <> ''
    """  # noqa: S608 - table names are the models', values are parameters
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, hash_device_key(device_key)])
        row = cursor.fetchone()
    if row is None or not key_matches(device_key, row[4]) or row[7] != ApprovedIdentity.Status.APPROVED:
        return None
    pk, code, status, online, key_hash, organization_id, applied_config_version = row[:7]
    # What the device API's views read (a heartbeat compares the configuration version it reports
    # with the applied one: a new one is a webhook event); any other field loads on first access.
    # from_db takes the values in the model's field order, whatever order the names are given in.
    read = {
        "id": pk,
        "code": uuid.UUID(str(code)),
        "status": status,
        "online": bool(online),
        "key_hash": key_hash,
        "organization_id": organization_id,
        "applied_config_version": applied_config_version,
    }
    names = [field.attname for field in Device._meta.concrete_fields if field.attname in read]
    device = Device.from_db(connection.alias, names, [read[name] for name in names])
    if with_waiting:
        device.waiting = heartbeat_intake.waiting_from(row[8:])
    return device
