"""The outbox: events written in the transaction of the change they tell of, one delivery per
subscribed endpoint, and the delivery task sent once that transaction commits.

A change that rolls back leaves no event; an event whose task the broker loses is still in the
database, where the beat (webhooks/delivery.py wake_due_endpoints) finds it. An organization
without an enabled endpoint subscribed to the event pays one indexed query, and no more.
"""

from collections import defaultdict
from functools import partial

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from devices.representation import api_devices, device_data
from portal.keyset import rows_in_order

from .delivery import ring_doorbells
from .models import Delivery, Endpoint, Event

BATCH = 1000


def record_device_events(event, devices, *, occurred_at=None, extra=None):
    """Write `event` (an EventName) about each of `devices` (Device objects, or a Device queryset
    for a set-based caller) for every enabled endpoint of the device's organization subscribed to
    it; `data` is the device as the customer API shows it (devices/representation.py), with the
    keys of `extra` added. Call it inside the change's transaction, after the change, except for a
    release, before it: the event shows the device as its organization last held it.
    Returns how many deliveries were written."""
    if isinstance(devices, QuerySet):
        organizations, ids = devices.values("organization_id"), devices.values("pk")
    else:
        devices = list(devices)
        organizations, ids = {device.organization_id for device in devices}, [device.pk for device in devices]
    endpoints = _subscribed_endpoints(event, Endpoint.objects.filter(organization_id__in=organizations))
    if not endpoints:
        return 0
    occurred_at = occurred_at or timezone.now()
    rows = api_devices().filter(pk__in=ids, organization_id__in=list(endpoints)).order_by("pk")
    events = (
        Event(
            organization_id=device.organization_id,
            event=event,
            occurred_at=occurred_at,
            data=device_data(device, occurred_at) | (extra or {}),
        )
        for device in rows_in_order(rows, BATCH)
    )
    return _write(events, endpoints)


def record_event(organization_id, event, data, *, endpoints=None):
    """Write `event` with `data` for `endpoints` (default: the organization's enabled endpoints
    subscribed to it), in the caller's transaction. Returns the Event, or None when no endpoint
    wants it."""
    chosen = endpoints if endpoints is not None else Endpoint.objects.filter(organization_id=organization_id)
    by_organization = _subscribed_endpoints(event, chosen)
    if not by_organization:
        return None
    record = Event(organization_id=organization_id, event=event, data=data)
    _write([record], by_organization)
    return record


def _subscribed_endpoints(event, endpoints):
    """{organization id: [its enabled endpoints subscribed to `event`]}: organizations have few
    endpoints, so the subscriptions (a JSON list) are read here rather than in SQL."""
    by_organization = defaultdict(list)
    for endpoint in endpoints.filter(enabled=True) if isinstance(endpoints, QuerySet) else endpoints:
        if endpoint.enabled and endpoint.subscribes_to(event):
            by_organization[endpoint.organization_id].append(endpoint)
    return by_organization


def _write(events, by_organization):
    """bulk_create the events and their deliveries, in batches; ring the endpoints' doorbells on commit."""
    written = 0
    batch = []
    for record in events:
        batch.append(record)
        if len(batch) == BATCH:
            written += _write_batch(batch, by_organization)
            batch = []
    if batch:
        written += _write_batch(batch, by_organization)
    if written:
        endpoint_ids = sorted({endpoint.pk for endpoints in by_organization.values() for endpoint in endpoints})
        transaction.on_commit(partial(ring_doorbells, endpoint_ids))
    return written


def _write_batch(events, by_organization):
    Event.objects.bulk_create(events)
    deliveries = [
        Delivery(event=record, endpoint=endpoint, created_at=record.occurred_at, next_attempt_at=record.occurred_at)
        for record in events
        for endpoint in by_organization[record.organization_id]
    ]
    Delivery.objects.bulk_create(deliveries)
    return len(deliveries)
