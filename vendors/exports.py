"""Exporting a model's serial list as CSV, safe to open in a spreadsheet."""

from portal.csv import csv_lines
from portal.keyset import rows_in_order

from .models import ApprovedIdentity


def serial_list_rows(device_model):
    """The header and one row per approved identity of `device_model`, with approval and device
    statuses, last seen, and the claiming organization and date; streamed, in constant queries."""
    fields = device_model.claiming_method.ordered_fields()
    yield [field.key for field in fields] + ["approval", "device_status", "last_seen", "organization", "claimed_at"]
    identities = (
        ApprovedIdentity.objects.filter(device_model=device_model)
        .select_related("device__organization")
        .order_by("identifier_1", "pk")
    )
    for identity in rows_in_order(identities):
        device = getattr(identity, "device", None)
        yield [getattr(identity, field.column) for field in fields] + [
            identity.status,
            device.status if device else "unregistered",
            device.last_seen_at.isoformat() if device and device.last_seen_at else "",
            device.organization.name if device and device.organization else "",
            device.claimed_at.isoformat() if device and device.claimed_at else "",
        ]


def serial_list_csv(device_model):
    """The serial list as CSV lines, every cell neutralized against formula injection."""
    return csv_lines(serial_list_rows(device_model))
