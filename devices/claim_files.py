"""Files of units to claim into a space: the CSV template of a model, reading an upload into
ClaimRows for devices/bulk_claims.py, and the checked rows kept in the session between the report
and the customer's confirmation (so that the browser never sends the file twice).

The file's columns are the model's identifier field keys, `claim_code` when its method asks for
one, and `name`, in any order, with a header line; UTF-8 (a BOM is fine), at most MAX_ROWS rows.
"""

import csv
import uuid

from django.template.defaultfilters import filesizeformat
from django.utils.text import Truncator

from portal.csv import text_lines
from portal.errors import UserFacingError
from vendors.claim_codes import HashedClaimCode

from .bulk_claims import MAX_ROWS, ClaimRow
from .claims import CLAIM_CODE_FIELD, ClaimError, claim_code_proof

NAME_COLUMN = "name"
# 10,000 rows of three identifiers, a code and a name take well under a megabyte.
MAX_FILE_BYTES = 2 * 1024 * 1024
MAX_ROWS_TEXT = f"{MAX_ROWS:,}"


class FileRefused(UserFacingError):
    """The upload as a whole cannot be read as a file of this model's units; the message says why."""


class UnreadableRow(ClaimError):
    code = "invalid_row"
    counts_as_failure = False


def template_columns(device_model):
    """The header of the model's file: its identifier fields' keys, claim_code if it asks for one, name."""
    keys = [field.key for field in device_model.claiming_method.ordered_fields()]
    if device_model.claiming_method.requires_claim_code:
        keys.append(CLAIM_CODE_FIELD)
    return [*keys, NAME_COLUMN]


def read_claim_file(upload, *, space, device_model):
    """The ClaimRows of the uploaded file (a Django UploadedFile) for claiming units of
    `device_model` into `space`, with their line numbers; a line of the wrong width is a row
    refused as UnreadableRow. Raises FileRefused for a file too large, not UTF-8, not CSV, with
    another header, without rows or with more than MAX_ROWS."""
    if upload.size > MAX_FILE_BYTES:
        raise FileRefused(
            f"The file is larger than {filesizeformat(MAX_FILE_BYTES)} ({filesizeformat(upload.size)}); "
            "split it into smaller files."
        )
    expected = template_columns(device_model)
    stream = upload.file  # the bytes: in memory or a temporary file, by the upload's size
    stream.seek(0)
    lines = text_lines(stream, FileRefused)
    reader = csv.reader(lines)
    rows = []
    try:
        header = next(reader, None)
        while header is not None and not any(cell.strip() for cell in header):
            header = next(reader, None)  # blank lines before the header
        keys = [cell.strip().lower() for cell in header or []]
        if sorted(keys) != sorted(expected):
            raise FileRefused(
                f"The first line must name the columns of the {device_model.name} template: {','.join(expected)} "
                f"(found: {Truncator(','.join(header or [])).chars(120) or 'nothing'})."
            )
        for record in reader:
            if not any(cell.strip() for cell in record):
                continue  # a blank line
            if len(rows) == MAX_ROWS:
                raise FileRefused(f"The file has more than {MAX_ROWS:,} rows; split it into smaller files.")
            rows.append(_row(reader.line_num, record, keys, space, device_model))
    except csv.Error as exc:
        raise FileRefused(f"Line {reader.line_num} cannot be read as CSV: {exc}.") from exc
    finally:
        lines.close()
    if not rows:
        raise FileRefused("The file has a header but no rows.")
    return rows


def _row(line, record, keys, space, device_model):
    # Spreadsheets pad lines with empty cells: those past the header do not count.
    while len(record) > len(keys) and not record[-1].strip():
        record = record[:-1]
    values = dict(zip(keys, record, strict=False))
    refusal = None
    if len(record) != len(keys):
        refusal = UnreadableRow(f"Expected {len(keys)} values, found {len(record)}.")
    return ClaimRow(
        line=line,
        space=space,
        device_model=device_model,
        identifiers={key: value for key, value in values.items() if key not in (CLAIM_CODE_FIELD, NAME_COLUMN)},
        name=values.get(NAME_COLUMN, ""),
        claim_code=values.get(CLAIM_CODE_FIELD),
        refusal=refusal,
    )


def _session_key(space):
    return f"claim_file_{space.code.hex}"


def keep_checked_rows(session, space, device_model, rows):
    """Keep the rows that passed the check (ClaimRows) for the confirmation, in place of any kept
    before for `space`; returns the batch id the confirmation must send back. A claim code is kept
    as its keyed hash (HashedClaimCode), never as typed."""
    batch = uuid.uuid4().hex
    session[_session_key(space)] = {
        "batch": batch,
        "model": device_model.pk,
        "rows": [
            [
                row.line,
                row.identifiers,
                row.name,
                proof.digest if (proof := claim_code_proof(device_model, row.claim_code)) else None,
            ]
            for row in rows
        ],
    }
    return batch


def kept_rows(session, space, batch, device_models):
    """The ClaimRows kept for `space` under `batch` (None when none are, or another upload replaced
    them), of the kept model if it is still among `device_models` (a queryset)."""
    kept = session.get(_session_key(space))
    if not kept or kept["batch"] != batch:
        return None
    device_model = device_models.filter(pk=kept["model"]).first()
    if device_model is None:
        return None
    return [
        ClaimRow(line, space, device_model, identifiers, name, HashedClaimCode(digest) if digest else None)
        for line, identifiers, name, digest in kept["rows"]
    ]


def forget_rows(session, space):
    session.pop(_session_key(space), None)
