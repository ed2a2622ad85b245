"""The organization-wide device list as CSV, for a spreadsheet."""

import itertools

from django.utils import timezone

from portal.csv import csv_lines
from portal.keyset import rows_in_order

HEADER = ["name", "space", "vendor", "model", "identifiers", "status", "connection", "last seen"]


def device_list_csv(devices):
    """The lines of a CSV file of `devices` (a searched queryset, kept in its order), read from the
    database in chunks and every cell neutralized by portal/csv.py, for a StreamingHttpResponse.

    Identifiers are the unit's normalized values, " / "-separated as the portal shows them;
    connection follows the one online rule (Device.is_online) at the time the export starts.
    """
    now = timezone.now()
    rows = (
        [
            device.name,
            device.space.name if device.space else "",
            device.device_model.vendor.name,
            device.device_model.name,
            str(device.identity),
            device.get_status_display(),
            _connection(device, now),
            device.last_seen_at.isoformat() if device.last_seen_at else "",
        ]
        for device in rows_in_order(devices.select_related("identity"))
    )
    return csv_lines(itertools.chain([HEADER], rows))


def _connection(device, now):
    if device.last_seen_at is None:
        return "Never connected"
    return "Online" if device.is_online(now) else "Offline"
