"""Reading a serial-list file into the ImportRow staging table, and the set-based checks over the
staged rows: the file's header, every value cleaned and format-checked as it is read, rows COPYed
in batches (plain INSERT on SQLite), then repeats within the file and values already on the model's
serial list marked in SQL. vendors/imports.py drives it; this module knows files and SQL only.
"""

import csv
import io
import itertools
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.template.defaultfilters import filesizeformat
from django.utils.text import Truncator

from portal.csv import text_lines
from portal.errors import UserFacingError

from .code_issues import import_codes
from .models import ApprovedIdentity

# Rows staged per COPY / INSERT batch; the job's progress is saved between batches.
BATCH_ROWS = 50_000
# Rows handed to the database at a time within a batch.
CHUNK_ROWS = 5_000
STAGING_COLUMNS = ("job_id", "line", "identifier_1", "identifier_2", "identifier_3", "claim_code_hash", "error")
# What the fast path sends for each row; `code` and `revoked_at` take the columns' defaults, and so
# does `claim_code_hash` for a model without claim codes.
APPROVED_COLUMNS = ("device_model_id", "identifier_1", "identifier_2", "identifier_3", "status", "created_at")
CLAIM_CODE_COLUMN = "claim_code"


class FileRefused(UserFacingError):
    """The file as a whole cannot be read as this model's serial list; the message says why."""


class NotClean(Exception):
    """The fast path met a bad row: the staged path has to validate the file and report."""


@dataclass
class _Column:
    index: int  # position in the CSV row
    key: str
    clean: object  # the field's value_cleaner
    slot: int  # 0-based identifier_N slot


def expected_header(device_model):
    """The CSV header a model's serial list must have: its identifier fields' keys, in order."""
    return [field.key for field in device_model.claiming_method.ordered_fields()]


def check_upload_size(size):
    """Refuse a file of `size` bytes larger than IMPORT_MAX_UPLOAD_BYTES (FileRefused), before
    anything reads it: the admin's upload form, the worker and the command line all ask here."""
    limit = settings.IMPORT_MAX_UPLOAD_BYTES
    if size is not None and size > limit:
        raise FileRefused(
            f"The file is larger than {filesizeformat(limit)} ({filesizeformat(size)}); split it into smaller files."
        )


def _columns_for(header, device_model):
    """The identifier columns of `header`, and the position of its claim_code column (or None)."""
    method = device_model.claiming_method
    fields = method.ordered_fields()
    keys = [name.strip().lower() for name in header]
    wanted = [field.key for field in fields]
    code_index = keys.index(CLAIM_CODE_COLUMN) if CLAIM_CODE_COLUMN in keys else None
    if code_index is not None and not method.requires_claim_code:
        raise FileRefused(
            f"This model's claiming method ({method}) takes no claim codes: remove the claim_code column, "
            "or give the model a claiming method that requires claim codes."
        )
    if sorted(key for key in keys if key != CLAIM_CODE_COLUMN) != sorted(wanted) or keys.count(CLAIM_CODE_COLUMN) > 1:
        optional = f" and, optionally, {CLAIM_CODE_COLUMN}" if method.requires_claim_code else ""
        raise FileRefused(
            f"The first line must name this model's identifier fields: {','.join(wanted)}{optional} "
            f"(found: {Truncator(','.join(header)).chars(120) or 'nothing'})."
        )
    columns = [
        _Column(index=keys.index(field.key), key=field.key, clean=field.value_cleaner, slot=field.position - 1)
        for field in fields
    ]
    return columns, code_index


def clear_staging(job):
    """Empty the job's staging rows. When no other job has rows staged (the usual case), TRUNCATE
    on PostgreSQL: deleting a million rows one by one costs seconds, truncating costs nothing."""
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # No other job can stage rows between the check and the TRUNCATE.
            cursor.execute("LOCK TABLE vendors_importrow IN ACCESS EXCLUSIVE MODE")
            cursor.execute(
                "SELECT EXISTS (SELECT 1 FROM vendors_importrow WHERE job_id < %s)"
                " OR EXISTS (SELECT 1 FROM vendors_importrow WHERE job_id > %s)",
                [job.pk, job.pk],
            )
            if not cursor.fetchone()[0]:
                cursor.execute("TRUNCATE vendors_importrow")
                return
        cursor.execute("DELETE FROM vendors_importrow WHERE job_id = %s", [job.pk])


def _copy(cursor, table, columns, rows):
    """COPY the tuples of the iterable `rows` into `table` (PostgreSQL); returns how many. Fed a
    chunk at a time, so the database stores rows while Python goes on reading the file."""
    written = 0
    with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN (FORMAT csv)") as copy:
        for chunk in itertools.batched(rows, CHUNK_ROWS):
            buffer = io.StringIO()
            # CSV COPY reads an unquoted empty field as NULL, which is what None is written as.
            csv.writer(buffer, lineterminator="\n").writerows(chunk)
            copy.write(buffer.getvalue())
            written += len(chunk)
    return written


def write_batch(job, rows):
    """Stage up to BATCH_ROWS (job id, line, id1, id2, id3, error) tuples from the iterator `rows`;
    returns how many. On PostgreSQL the batch is one COPY."""
    written = 0
    # A file refused half-way aborts the COPY; a savepoint keeps a caller's transaction usable.
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            written = _copy(cursor, "vendors_importrow", STAGING_COLUMNS, itertools.islice(rows, BATCH_ROWS))
        else:
            for chunk in itertools.batched(itertools.islice(rows, BATCH_ROWS), CHUNK_ROWS):
                cursor.executemany(
                    f"INSERT INTO vendors_importrow ({', '.join(STAGING_COLUMNS)})"  # noqa: S608
                    f" VALUES ({', '.join(['%s'] * len(STAGING_COLUMNS))})",
                    chunk,
                )
                written += len(chunk)
    return written


def approve_batch(job, rows, *, created_at):
    """The fast path's `write_batch`: COPY up to BATCH_ROWS staging tuples from `rows` straight into
    the serial list; raises NotClean, which aborts the COPY, at the first bad row."""
    with_codes = job.device_model.claiming_method.requires_claim_code
    status = ApprovedIdentity.Status.APPROVED.value

    def approved(model_id=job.device_model_id):
        for _job, _line, first, second, third, code_hash, error in itertools.islice(rows, BATCH_ROWS):
            if error is not None:
                raise NotClean
            if with_codes:
                yield model_id, first, second, third, status, created_at, code_hash
            else:
                yield model_id, first, second, third, status, created_at

    columns = (*APPROVED_COLUMNS, "claim_code_hash") if with_codes else APPROVED_COLUMNS
    with connection.cursor() as cursor:
        return _copy(cursor, "vendors_approvedidentity", columns, approved())


def stage_file(job, stream, size, progress, write_batch, *, fast=False):
    """Read the CSV stream row by row and hand the rows, as staging tuples, to `write_batch` (into
    the staging table, or the fast path's straight into the serial list) a batch at a time;
    returns (the number of data rows, whether the file has a claim_code column). A file larger
    than the limit is refused unread. Claim codes are checked, or generated, on the way
    (vendors/code_issues.py)."""
    check_upload_size(size)
    lines = text_lines(stream, FileRefused)
    reader = csv.reader(lines)
    try:
        header = next(reader, None)
        while header is not None and not any(cell.strip() for cell in header):
            header = next(reader, None)  # blank lines before the header
        if header is None:
            raise FileRefused("The file is empty: the first line must name the identifier fields.")
        columns, code_index = _columns_for(header, job.device_model)
        with import_codes(job, code_index, check_repeats=fast) as codes:
            rows = _cleaned_rows(job, reader, columns, len(header), codes)
            total = 0
            while written := write_batch(job, rows):
                total += written
                progress(min(99, stream.tell() * 100 // size) if size else 0)
    except csv.Error as exc:
        raise FileRefused(f"Line {reader.line_num} cannot be read as CSV: {exc}.") from exc
    finally:
        lines.close()  # hands the stream back now, while it is open, not whenever it is collected
    if total == 0:
        raise FileRefused("The file has a header but no rows.")
    return total, code_index is not None


def _cleaned_rows(job, reader, columns, width, codes):
    """The staging tuple of each data row the reader yields; blank lines are skipped. `codes` gives
    a good row its claim code's hash (None: the model takes no codes)."""
    limit, count, job_id = settings.IMPORT_MAX_ROWS, 0, job.pk
    for record in reader:
        if not record or (len(record) == 1 and not record[0].strip()):
            continue  # a blank line
        count += 1
        if count > limit:
            raise FileRefused(f"The file has more than {limit:,} rows; split it into smaller files.")
        if len(record) != width:
            yield (job_id, reader.line_num, None, None, None, None, f"Expected {width} values, found {len(record)}.")
            continue
        values = [None, None, None]
        try:
            for column in columns:
                values[column.slot] = column.clean(record[column.index])
        except ValidationError as exc:
            yield (job_id, reader.line_num, None, None, None, None, f"{column.key}: {exc.messages[0]}")
            continue
        code_hash, error = codes(record, reader.line_num, values) if codes else (None, None)
        yield (job_id, reader.line_num, *values, code_hash, error)


def mark_already_approved(job):
    """Set-based check: mark the staged rows whose values are already on the model's serial list."""
    if not ApprovedIdentity.objects.filter(device_model_id=job.device_model_id).exists():
        return  # a model's first list: nothing to compare with
    with connection.cursor() as cursor:
        for field in job.device_model.claiming_method.ordered_fields():
            column = field.column  # identifier_N, never user input
            cursor.execute(
                f"""
                UPDATE vendors_importrow SET error = %s || vendors_importrow.{column} || %s
                FROM vendors_approvedidentity approved
                WHERE vendors_importrow.job_id = %s AND vendors_importrow.error IS NULL
                  AND approved.device_model_id = %s AND approved.{column} = vendors_importrow.{column}
                """,  # noqa: S608 (no user input in the SQL text)
                [f"{field.key}: ", " is already on this model's serial list.", job.pk, job.device_model_id],
            )


def mark_repeats(job):
    """Set-based check: mark the staged rows repeating a value (or a claim code, which the message
    does not repeat) of an earlier line of the file."""
    method = job.device_model.claiming_method
    checks = [
        (field.column, f"{field.key}: ", f"vendors_importrow.{field.column}", " is also on line ")
        for field in method.ordered_fields()
    ]
    if method.requires_claim_code:
        checks.append(("claim_code_hash", "claim_code: ", "''", "the same code is also on line "))
    with connection.cursor() as cursor:
        # Columns and shown expressions are this module's constants, never user input.
        for column, prefix, shown, middle in checks:
            cursor.execute(
                f"""
                UPDATE vendors_importrow
                SET error = %s || {shown} || %s
                    || CAST(repeats.first_line AS TEXT) || '.'
                FROM (
                    SELECT line, MIN(line) OVER (PARTITION BY {column}) AS first_line
                    FROM vendors_importrow
                    WHERE job_id = %s AND error IS NULL AND {column} IN (
                        SELECT {column} FROM vendors_importrow WHERE job_id = %s AND error IS NULL
                        GROUP BY {column} HAVING COUNT(*) > 1
                    )
                ) repeats
                WHERE vendors_importrow.job_id = %s AND vendors_importrow.line = repeats.line
                  AND repeats.line > repeats.first_line
                """,  # noqa: S608 (no user input in the SQL text)
                [prefix, middle, job.pk, job.pk, job.pk],
            )
