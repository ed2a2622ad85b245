"""Importing a serial list: the one path the admin upload page, its Celery tasks and the
`import_identities` command all take.

1. `validate_import(job, stream)` streams the CSV file once, normalizes and format-checks
   every value with `IdentifierField.value_cleaner` (what `clean_value` runs), and writes
   each row (normalized, or with the reason it is bad) into the ImportRow staging table: COPY
   on PostgreSQL, plain INSERT on SQLite. Set-based SQL then marks duplicates within the file and values already on the
   model's serial list. Nothing is written to the serial list yet.
2. `import_validated_rows(job)` copies the good rows into ApprovedIdentity with one
   INSERT ... SELECT in one transaction: all of them or, if anything fails, none.

Both steps are idempotent and driven by the ImportJob row, so a worker that died mid-way is
answered by running the same step again.

`import_file(job, stream)`, the command line's import, first tries both in one pass on
PostgreSQL: it COPYs the cleaned rows straight into ApprovedIdentity, and falls back to the two
steps above (for their report) only when a row is bad, repeated or already approved.
"""

import csv
import functools
import io
import itertools
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.template.defaultfilters import filesizeformat
from django.utils import timezone
from django.utils.text import Truncator
from psycopg import errors

from portal.csv import text_lines
from portal.errors import UserFacingError

from .code_issues import destroy_staged_codes, import_codes, release_imported_codes
from .models import ApprovedIdentity, ImportJob, ImportRow

# How many bad rows the report lists (all are counted); keeps a five-million-line mistake small.
REPORTED_BAD_ROWS = 1000
# Rows staged per COPY / INSERT batch; the job's progress is saved between batches.
BATCH_ROWS = 50_000
# Rows handed to the database at a time within a batch.
CHUNK_ROWS = 5_000
# A validation saves its progress every batch (about a second); silence this long means it died.
RESUME_AFTER = timedelta(minutes=5)
# The import tasks' hard time limit, in seconds; a job quiet for longer has no live worker.
TASK_TIME_LIMIT = 3700
STALE_AFTER = timedelta(seconds=TASK_TIME_LIMIT + 300)
STAGING_COLUMNS = ("job_id", "line", "identifier_1", "identifier_2", "identifier_3", "claim_code_hash", "error")
# What the fast path sends for each row; `code` and `revoked_at` take the columns' defaults, and so
# does `claim_code_hash` for a model without claim codes.
APPROVED_COLUMNS = ("device_model_id", "identifier_1", "identifier_2", "identifier_3", "status", "created_at")
CLAIM_CODE_COLUMN = "claim_code"


class FileRefused(UserFacingError):
    """The file as a whole cannot be read as this model's serial list; the message says why."""


class _NotClean(Exception):
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


def _clear_staging(job):
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


def _write_batch(job, rows):
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


def _approve_batch(job, rows, *, created_at):
    """The fast path's `_write_batch`: COPY up to BATCH_ROWS staging tuples from `rows` straight into
    the serial list; raises _NotClean, which aborts the COPY, at the first bad row."""
    with_codes = job.device_model.claiming_method.requires_claim_code
    status = ApprovedIdentity.Status.APPROVED.value

    def approved(model_id=job.device_model_id):
        for _job, _line, first, second, third, code_hash, error in itertools.islice(rows, BATCH_ROWS):
            if error is not None:
                raise _NotClean
            if with_codes:
                yield model_id, first, second, third, status, created_at, code_hash
            else:
                yield model_id, first, second, third, status, created_at

    columns = (*APPROVED_COLUMNS, "claim_code_hash") if with_codes else APPROVED_COLUMNS
    with connection.cursor() as cursor:
        return _copy(cursor, "vendors_approvedidentity", columns, approved())


def _stage_file(job, stream, size, progress, write_batch, *, fast=False):
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


def _mark_already_approved(job):
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


def _mark_repeats(job):
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


def validate_import(job, stream, *, size=None, progress=None):
    """Check every row of `stream` (a binary CSV file) for `job`'s model and stage the result.

    Whole-file problems (empty, wrong header, not UTF-8, not CSV, too many rows) refuse the
    file (status `failed`, `problem` says why); row problems are listed with line numbers in
    `bad_rows` (status `validated`). Writes nothing to the serial list. Safe to run again:
    it starts from an empty staging table for the job.
    """

    def report_progress(percent):
        ImportJob.objects.filter(pk=job.pk).update(progress=percent)
        if progress:
            progress(percent)

    ImportJob.objects.filter(pk=job.pk).update(status=ImportJob.Status.VALIDATING, progress=0)
    _clear_staging(job)
    try:
        total, holds_codes = _stage_file(job, stream, size, report_progress, _write_batch)
    except FileRefused as exc:
        _refuse(job, exc.message)
        return job
    if holds_codes:
        # The file has the claim codes in clear, the staged rows only their hashes: keep no copy
        # while the job waits for a decision (should the staged rows be lost, it is asked for again).
        _discard_upload(job)
    _mark_already_approved(job)
    _mark_repeats(job)
    bad = ImportRow.objects.filter(job=job, error__isnull=False)
    _finish(
        job,
        status=ImportJob.Status.VALIDATED,
        finished=False,
        problem="",
        rows_total=total,
        rows_bad=bad.count(),
        bad_rows=[
            {"line": line, "message": error}
            for line, error in bad.order_by("line").values_list("line", "error")[:REPORTED_BAD_ROWS]
        ],
    )
    if progress:
        progress(100)
    return job


def validate_upload(job):
    """`validate_import` for a job's uploaded file (the admin's path); refuses a job whose file is gone."""
    try:
        stream = job.file.open("rb")
    except (FileNotFoundError, ValueError):  # ValueError: no file at all (a CLI job left behind)
        _refuse(job, "The uploaded file is no longer there; upload it again.")
        return job
    with stream:
        return validate_import(job, stream, size=job.file.size)


def _refuse(job, problem):
    _clear_staging(job)
    destroy_staged_codes(job)
    _finish(job, status=ImportJob.Status.FAILED, problem=problem, rows_total=0, rows_bad=0, bad_rows=[])
    _discard_upload(job)


def _finish(job, *, status, finished=True, **fields):
    fields |= {"status": status, "progress": 100, "finished_at": timezone.now() if finished else None}
    ImportJob.objects.filter(pk=job.pk).update(**fields)
    for name, value in fields.items():
        setattr(job, name, value)


def import_validated_rows(job):
    """Add the good rows of a validated job to the model's serial list: all in one transaction, or none.

    A value approved by someone else since validation is skipped, never duplicated. Returns the
    job; does nothing unless the job is validated or importing, so a task delivered twice imports once.

    The staging table is UNLOGGED, so PostgreSQL empties it when it recovers from a crash. The
    rows staged are counted against the rows validated first: if some are missing, the upload is
    validated again and then imported; a job without its file (the command line keeps none, and
    an upload with claim codes is deleted once staged) is refused saying so, rather than
    reporting that nothing of it was added.
    """
    imported = _import_staged_rows(job)
    if imported is not None:
        return imported
    # Only one task validates again: a task delivered twice finds the job validating and leaves it.
    again = ImportJob.objects.filter(
        pk=job.pk, status__in=[ImportJob.Status.VALIDATED, ImportJob.Status.IMPORTING]
    ).update(status=ImportJob.Status.VALIDATING, progress=0)
    if not again:  # another task is validating it again, or the vendor cancelled meanwhile
        job.refresh_from_db()
        return job
    if job.file:
        validate_upload(job)
        asked = ImportJob.objects.filter(pk=job.pk, status=ImportJob.Status.VALIDATED).update(
            status=ImportJob.Status.IMPORTING
        )
        if not asked:  # the file was refused (or is gone), or the vendor cancelled meanwhile
            job.refresh_from_db()
            return job
        imported = _import_staged_rows(job)
        if imported is not None:
            return imported
    _refuse(
        job,
        "The validated rows were lost before the import (the database restarted); nothing was imported. "
        "Upload the file again.",
    )
    return job


def _import_staged_rows(job):
    """`import_validated_rows` from the staged rows; None if they are not all there any more."""
    with transaction.atomic():
        locked = (
            ImportJob.objects.select_for_update(of=("self",))
            .select_related("device_model__claiming_method")
            .get(pk=job.pk)
        )
        if locked.status not in {ImportJob.Status.VALIDATED, ImportJob.Status.IMPORTING}:
            return locked
        if ImportRow.objects.filter(job=locked).count() != locked.rows_total:
            return None
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                # Keeps other writers out until commit, so the re-check below stays true and the
                # INSERT needs no ON CONFLICT clause (which would double its cost); readers, and
                # so claims, are not blocked.
                cursor.execute("LOCK TABLE vendors_approvedidentity IN SHARE ROW EXCLUSIVE MODE")
            _mark_already_approved(locked)
            cursor.execute(
                """
                INSERT INTO vendors_approvedidentity
                    (device_model_id, identifier_1, identifier_2, identifier_3, status, created_at, claim_code_hash)
                SELECT %s, identifier_1, identifier_2, identifier_3, %s, %s, COALESCE(claim_code_hash, '')
                FROM vendors_importrow WHERE job_id = %s AND error IS NULL
                """,
                [locked.device_model_id, "approved", timezone.now(), locked.pk],
            )
            imported = cursor.rowcount
        release_imported_codes(locked, imported)
        _clear_staging(locked)
        _finish(locked, status=ImportJob.Status.IMPORTED, rows_imported=imported)
    transaction.on_commit(lambda: _discard_upload(locked))
    return locked


def import_file(job, stream, *, size=None, progress=None):
    """Validate `stream` (a binary CSV file) for `job`'s model and, when every row is good, add
    them all to the serial list in one transaction: the command line's import.

    On PostgreSQL a fast path comes first: one pass cleans each row with the same code as
    `validate_import` and COPYs it straight into the serial list, in one transaction. The unique
    indexes refuse repeats within the file and values already approved, also those another
    import is adding at the same moment; as each batch of BATCH_ROWS is a COPY of its own, a
    conflict stops the pass within a batch. At the first bad row or unique conflict everything
    is rolled back and the file is read again the staged way, `validate_import`, for the report
    with line numbers; a good file costs one pass and one COPY per batch. Elsewhere (SQLite) the
    staged way is the only one.

    Returns the job: `imported`; `failed` (the file refused, `problem` says why); or `validated`
    with `rows_bad`, nothing written, for the caller to report and then cancel.
    """
    ImportJob.objects.filter(pk=job.pk).update(status=ImportJob.Status.VALIDATING, progress=0)
    if connection.vendor == "postgresql":
        try:
            _import_in_one_pass(job, stream, size, progress or (lambda percent: None))
        except FileRefused as exc:
            _refuse(job, exc.message)
            return job
        # A deadlock: another import copying some of the same values in another order.
        except (_NotClean, errors.UniqueViolation, errors.DeadlockDetected):
            stream.seek(0)
        else:
            if progress:
                progress(100)
            return job
    validate_import(job, stream, size=size, progress=progress)
    if job.status == ImportJob.Status.VALIDATED and not job.rows_bad:
        job = import_validated_rows(job)  # e.g. the conflicting import has been rolled back since
    return job


def _import_in_one_pass(job, stream, size, progress):
    """The fast path of `import_file`: raises what stopped it, with nothing written."""
    created_at = timezone.now().isoformat()
    with transaction.atomic():
        write_batch = functools.partial(_approve_batch, created_at=created_at)
        total, _holds_codes = _stage_file(job, stream, size, progress, write_batch, fast=True)
        release_imported_codes(job, total)
        _finish(job, status=ImportJob.Status.IMPORTED, problem="", rows_total=total, rows_bad=0, rows_imported=total)


def _discard_upload(job):
    """Delete a finished job's uploaded file; the job keeps its name and report."""
    if job.file:
        job.file.delete(save=False)
        ImportJob.objects.filter(pk=job.pk).update(file="")


def request_import(job):
    """Queue the import of a validated job's good rows (the admin's "Import" button); False if not validated."""
    from .tasks import import_job_rows

    with transaction.atomic():
        changed = ImportJob.objects.filter(pk=job.pk, status=ImportJob.Status.VALIDATED).update(
            status=ImportJob.Status.IMPORTING
        )
        if changed:
            import_job_rows.delay_on_commit(job.pk)
    return bool(changed)


def cancel_import(job):
    """Drop a validated job's staged rows without importing anything; False if it is not waiting."""
    changed = ImportJob.objects.filter(pk=job.pk, status=ImportJob.Status.VALIDATED).update(
        status=ImportJob.Status.CANCELLED, finished_at=timezone.now()
    )
    if changed:
        _clear_staging(job)
        destroy_staged_codes(job)
        _discard_upload(job)
    return bool(changed)


def resume_import(job, *, now=None):
    """Send again the task for the step a job is in, after its worker died; False if there is none.

    A validation that reported progress in the last RESUME_AFTER is still running and is left
    alone (two validations of one job would write the same staging rows); an import may be sent
    twice, as the second waits for the first's lock and then finds the job imported.
    """
    from .tasks import import_job_rows, validate_job_file

    now = now or timezone.now()
    if job.status in {ImportJob.Status.PENDING, ImportJob.Status.VALIDATING}:
        if job.status == ImportJob.Status.VALIDATING and job.updated_at > now - RESUME_AFTER:
            return False
        transaction.on_commit(lambda: validate_job_file.delay(job.pk))
        return True
    if job.status == ImportJob.Status.IMPORTING:
        transaction.on_commit(lambda: import_job_rows.delay(job.pk))
        return True
    return False


def sweep_import_jobs(*, now=None):
    """The periodic clean-up: resume jobs whose worker died (no sign of life for longer than a
    task may run) and cancel validated jobs nobody decided on for IMPORT_DECISION_DAYS, freeing
    their staging rows. Returns (resumed, cancelled)."""
    now = now or timezone.now()
    stale = ImportJob.objects.filter(
        status__in=[ImportJob.Status.PENDING, ImportJob.Status.VALIDATING, ImportJob.Status.IMPORTING],
        updated_at__lt=now - STALE_AFTER,
    )
    resumed = sum(resume_import(job, now=now) for job in stale)
    abandoned = ImportJob.objects.filter(
        status=ImportJob.Status.VALIDATED, updated_at__lt=now - timedelta(days=settings.IMPORT_DECISION_DAYS)
    )
    cancelled = sum(cancel_import(job) for job in abandoned)
    return resumed, cancelled
