"""Exporting a model's serial list as CSV, safe to open in a spreadsheet."""

import csv

from .models import ApprovedIdentity

# A cell starting with one of these is read as a formula by Excel, LibreOffice and Sheets (OWASP
# "CSV injection"); tab and carriage return can hide such a start.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralize_formula(value):
    """`value` as text a spreadsheet shows as is: a leading apostrophe if it could start a formula."""
    text = "" if value is None else str(value)
    return f"'{text}" if text.startswith(FORMULA_STARTS) else text


def serial_list_rows(device_model):
    """The header and one row per approved identity of `device_model`, with approval and device
    statuses, last seen, and the claiming organization and date; streamed, in constant queries."""
    fields = device_model.claiming_method.ordered_fields()
    yield [field.key for field in fields] + ["approval", "device_status", "last_seen", "organization", "claimed_at"]
    identities = (
        ApprovedIdentity.objects.filter(device_model=device_model)
        .select_related("device__organization")
        .order_by("identifier_1")
    )
    for identity in identities.iterator(chunk_size=2000):
        device = getattr(identity, "device", None)
        yield [getattr(identity, field.column) for field in fields] + [
            identity.status,
            device.status if device else "unregistered",
            device.last_seen_at.isoformat() if device and device.last_seen_at else "",
            device.organization.name if device and device.organization else "",
            device.claimed_at.isoformat() if device and device.claimed_at else "",
        ]


class _Echo:
    def write(self, value):
        return value


def serial_list_csv(device_model):
    """The serial list as CSV lines, every cell neutralized against formula injection."""
    writer = csv.writer(_Echo())
    for row in serial_list_rows(device_model):
        yield writer.writerow([neutralize_formula(cell) for cell in row])
