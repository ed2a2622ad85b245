"""Importing a serial list: the one path the admin upload page, its Celery tasks and the
`import_identities` command all take.

1. `validate_import(job, stream)` streams the CSV file once (vendors/import_staging.py), normalizes and format-checks
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

import functools
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from psycopg import errors

from .code_issues import destroy_staged_codes, release_imported_codes
from .import_staging import (
    FileRefused,
    NotClean,
    approve_batch,
    clear_staging,
    mark_already_approved,
    mark_repeats,
    stage_file,
    write_batch,
)
from .models import ImportJob, ImportRow

# How many bad rows the report lists (all are counted); keeps a five-million-line mistake small.
REPORTED_BAD_ROWS = 1000
# A validation saves its progress every batch (about a second); silence this long means it died.
RESUME_AFTER = timedelta(minutes=5)
# The import tasks' hard time limit, in seconds; a job quiet for longer has no live worker.
TASK_TIME_LIMIT = 3700
STALE_AFTER = timedelta(seconds=TASK_TIME_LIMIT + 300)


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
    clear_staging(job)
    try:
        total, holds_codes = stage_file(job, stream, size, report_progress, write_batch)
    except FileRefused as exc:
        _refuse(job, exc.message)
        return job
    if holds_codes:
        # The file has the claim codes in clear, the staged rows only their hashes: keep no copy
        # while the job waits for a decision (should the staged rows be lost, it is asked for again).
        _discard_upload(job)
    mark_already_approved(job)
    mark_repeats(job)
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
    clear_staging(job)
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
            mark_already_approved(locked)
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
        clear_staging(locked)
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
        except (NotClean, errors.UniqueViolation, errors.DeadlockDetected):
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
        write_batch = functools.partial(approve_batch, created_at=created_at)
        total, _holds_codes = stage_file(job, stream, size, progress, write_batch, fast=True)
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
        clear_staging(job)
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
