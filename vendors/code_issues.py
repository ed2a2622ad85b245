"""Claim codes the portal generates, and their one trip to the vendor.

A model whose claiming method requires claim codes gets them from its serial list's `claim_code`
column, or, when the file has none, from the portal: `import_codes` generates one per unit while
the file is staged (unique within the list) and writes the plaintext to an encrypted file
(vendors/code_files.py); the staging table and the serial list get only the HMAC. When the
import commits, `release_imported_codes` makes the file downloadable; a refused or cancelled
import destroys it. `reissue_claim_codes` gives units new codes (their old ones stop matching at
once) and offers them the same way.

"Once" means: the CSV of the codes and the label sheet can each be downloaded one time
(`take_download`, a compare-and-set under the issue's row lock, so two clicks get one file); the
file is destroyed as soon as every download offered has been taken, or CLAIM_CODE_DOWNLOAD_HOURS
after the codes were issued, whichever comes first (`sweep_claim_code_issues`). A download that
broke off cannot be repeated: the codes are re-issued instead.
"""

import contextlib
import itertools
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from .claim_codes import ClaimCodeError, claim_code_generator, claim_code_hasher, normalize_claim_code
from .code_files import CodeFileError, CodeFileWriter, check_code_file, code_file_path, read_code_file
from .models import ApprovedIdentity, ClaimCodeIssue, ImportRow, VendorAuditEntry

# A label sheet is built in memory (PDF writers need the whole document) within the request: it is
# offered for issues of up to this many units, about 7 s, 2 MB of PDF and 110 MB of memory here;
# larger ones get the CSV, for the label printer.
LABEL_SHEET_MAX_UNITS = 2000
# Units one "Re-issue claim codes" action may give new codes (its updates run in the request).
REISSUE_MAX_UNITS = 10_000
# A file older than this that no live issue names is a leftover (validations save progress every second).
STRAY_AFTER = timedelta(hours=2)
DOWNLOADS = {"csv": "csv_downloaded_at", "labels": "labels_downloaded_at"}
AUDIT_ACTIONS = {
    "csv": VendorAuditEntry.Action.CLAIM_CODES_DOWNLOADED,
    "labels": VendorAuditEntry.Action.LABEL_SHEET_DOWNLOADED,
}


class _GeneratedCodes:
    """Gives each unit a new code, unique among this list's, and writes it to the issue's file."""

    def __init__(self, writer, field_count):
        self.writer, self.field_count = writer, field_count
        self.hash, self.generate = claim_code_hasher(), claim_code_generator()
        # 1M ints: about 60 MB. Ten random digits repeat within a million codes some fifty times.
        self.seen = set()

    def __call__(self, record, line, values):
        code = self.generate()
        while (number := int(code)) in self.seen:
            code = self.generate()
        self.seen.add(number)
        self.writer.write(line, values[: self.field_count], code)
        return self.hash(code), None


class _SuppliedCodes:
    """Checks the code of the file's claim_code column. Repeats are left to the staged path's
    set-based check (which names the earlier line), unless `check_repeats`: the fast path stops at
    the first one, to fall back to that check."""

    def __init__(self, index, check_repeats):
        self.index = index
        self.hash = claim_code_hasher()
        self.seen = set() if check_repeats else None

    def __call__(self, record, line, values):
        try:
            code = normalize_claim_code(record[self.index])
        except ClaimCodeError as exc:
            return None, f"claim_code: {exc.message}"
        if self.seen is not None:
            if int(code) in self.seen:
                return None, "claim_code: the same code is on an earlier line."
            self.seen.add(int(code))
        return self.hash(code), None


@contextlib.contextmanager
def import_codes(job, code_index, *, check_repeats):
    """While a file is staged for `job`: None for a model without claim codes, else a function of
    (CSV record, line, identifier values) -> (claim code hash, error). Without a claim_code column
    (`code_index` None) the codes are generated into the job's issue file, replaced only when the
    whole file was read."""
    if not job.device_model.claiming_method.requires_claim_code:
        yield None
        return
    if code_index is not None:
        yield _SuppliedCodes(code_index, check_repeats)
        return
    issue, _ = ClaimCodeIssue.objects.get_or_create(
        import_job=job,
        defaults={
            "device_model": job.device_model,
            "reason": ClaimCodeIssue.Reason.IMPORT,
            "created_by": job.created_by,
        },
    )
    writer = CodeFileWriter(code_file_path(issue.code))
    try:
        yield _GeneratedCodes(writer, len(job.device_model.claiming_method.ordered_fields()))
    except BaseException:
        writer.discard()
        raise
    writer.close()
    ClaimCodeIssue.objects.filter(pk=issue.pk).update(status=ClaimCodeIssue.Status.STAGED, units=writer.records)


def release_imported_codes(job, imported):
    """The import of `job` committing `imported` rows: its generated codes become downloadable, less
    those of rows that were not imported (bad, or approved meanwhile), whose lines the staging table
    still marks. Call in the import's transaction, before the staging rows are cleared."""
    issue = ClaimCodeIssue.objects.filter(import_job=job, status=ClaimCodeIssue.Status.STAGED).first()
    if issue is None:
        return None
    if imported != issue.units:
        left_out = (
            ImportRow.objects.filter(job=job, error__isnull=False)
            .order_by("line")
            .values_list("line", flat=True)
            .iterator(chunk_size=5000)
        )
        _rewrite_without(issue, left_out)
    _offer(issue, units=imported)
    return issue


def _rewrite_without(issue, left_out_lines):
    """Rewrite the issue's file without the records of `left_out_lines` (ascending, as the file)."""
    path = code_file_path(issue.code)
    writer = CodeFileWriter(path)
    skip = next(left_out_lines, None)
    try:
        with open(path, "rb") as source:
            for line, values, code in read_code_file(source):
                while skip is not None and skip < line:
                    skip = next(left_out_lines, None)
                if line != skip:
                    writer.write(line, values, code)
    except BaseException:
        writer.discard()
        raise
    writer.close()


def _offer(issue, *, units):
    now = timezone.now()
    issue.status, issue.units = ClaimCodeIssue.Status.READY, units
    issue.expires_at = now + timedelta(hours=settings.CLAIM_CODE_DOWNLOAD_HOURS)
    issue.save(update_fields=["status", "units", "expires_at"])


def destroy_staged_codes(job):
    """A job refused, cancelled or failed: the codes generated for it are destroyed unread."""
    for issue in ClaimCodeIssue.objects.filter(import_job=job, status=ClaimCodeIssue.Status.STAGED):
        destroy_codes(issue)


def destroy_codes(issue):
    """Delete the issue's plaintext codes for good; the units keep their codes' hashes."""
    code_file_path(issue.code).unlink(missing_ok=True)
    ClaimCodeIssue.objects.filter(pk=issue.pk).update(
        status=ClaimCodeIssue.Status.DESTROYED, destroyed_at=timezone.now()
    )
    issue.status = ClaimCodeIssue.Status.DESTROYED


def reissue_claim_codes(identities, *, actor=None):
    """Give each unit of `identities` a new claim code and offer the codes once, one issue per model.

    Only units of models whose claiming method requires claim codes are touched; their old codes stop
    matching when this commits (the stored hash is replaced), the copy in each unit's firmware too:
    a unit sends its code when it activates, so one in the field cannot activate again until its
    firmware gets the new code. Each unit's re-issue is written to the vendor audit log, naming
    `actor`. Returns the issues created. Raises ValueError for more than REISSUE_MAX_UNITS units.
    """
    selected = identities.filter(device_model__claiming_method__requires_claim_code=True)
    if selected.count() > REISSUE_MAX_UNITS:
        raise ValueError(f"Re-issue at most {REISSUE_MAX_UNITS:,} units at a time.")
    issues = []
    with transaction.atomic():
        rows = (
            selected.select_for_update(of=("self",))
            .order_by("device_model_id", "pk")
            .values_list("device_model_id", "pk", "identifier_1", "identifier_2", "identifier_3")
        )
        for model_id, units in itertools.groupby(rows, key=lambda row: row[0]):
            issues.append(_reissue_model(model_id, list(units), actor))
    return issues


def _reissue_model(model_id, units, actor):
    issue = ClaimCodeIssue.objects.create(
        device_model_id=model_id, reason=ClaimCodeIssue.Reason.REISSUE, created_by=actor
    )
    field_count = len(issue.device_model.claiming_method.ordered_fields())
    writer = CodeFileWriter(code_file_path(issue.code))
    generated = _GeneratedCodes(writer, field_count)
    try:
        updates = []
        for number, (_model, pk, *values) in enumerate(units, start=1):
            code_hash, _ = generated(None, number, values)
            updates.append((code_hash, pk))
        with connection.cursor() as cursor:
            cursor.executemany(
                f"UPDATE {ApprovedIdentity._meta.db_table} SET claim_code_hash = %s WHERE id = %s",  # noqa: S608 (no user input)
                updates,
            )
        VendorAuditEntry.objects.bulk_create(
            VendorAuditEntry(
                vendor_id=issue.device_model.vendor_id,
                device_model_id=model_id,
                identifiers=" / ".join(value for value in values if value)[:200],
                action=VendorAuditEntry.Action.CLAIM_CODE_REISSUED,
                actor=actor,
            )
            for _model, _pk, *values in units
        )
    except BaseException:
        writer.discard()
        raise
    # Should the transaction roll back after all, the sweeper deletes the file of an issue that never was.
    writer.close()
    _offer(issue, units=len(units))
    return issue


def labels_offered(issue):
    return issue.units <= LABEL_SHEET_MAX_UNITS


def take_download(issue, kind, *, actor=None):
    """Take the `kind` ("csv" or "labels") download of `issue`, once: the open code file to read
    (with read_code_file), or None when it was taken already, is not offered or the codes are gone
    (past `expires_at`, they are destroyed here, whether the sweep has run or not). The last
    download offered destroys the file; the open handle still reads it.

    Raises CodeFileError, taking nothing, when the file cannot be decrypted (altered, or SECRET_KEY
    changed since): the whole file is checked before the download counts as taken. A download
    taken is written to the vendor audit log, naming `actor`."""
    field = DOWNLOADS[kind]
    with transaction.atomic():
        locked = ClaimCodeIssue.objects.select_for_update().get(pk=issue.pk)
        if locked.status != ClaimCodeIssue.Status.READY or getattr(locked, field) is not None:
            return None
        if kind == "labels" and not labels_offered(locked):
            return None
        if locked.expires_at is not None and locked.expires_at <= timezone.now():
            destroy_codes(locked)
            return None
        try:
            source = open(code_file_path(locked.code), "rb")  # noqa: SIM115 (the caller reads and closes it)
        except FileNotFoundError:
            destroy_codes(locked)
            return None
        try:
            check_code_file(source)
        except CodeFileError:
            source.close()
            raise
        setattr(locked, field, timezone.now())
        locked.save(update_fields=[field])
        VendorAuditEntry.objects.create(
            vendor_id=issue.device_model.vendor_id,
            device_model_id=locked.device_model_id,
            identifiers=str(locked)[:200],
            action=AUDIT_ACTIONS[kind],
            actor=actor,
        )
        offered = [name for each, name in DOWNLOADS.items() if each == "csv" or labels_offered(locked)]
        if all(getattr(locked, name) for name in offered):
            destroy_codes(locked)
    return source


def issue_records(issue, source):
    """({field key: value}, code) for each unit of the issue's open code file, closing it at the end."""
    keys = [field.key for field in issue.device_model.claiming_method.ordered_fields()]
    with source:
        for _line, values, code in read_code_file(source):
            yield dict(zip(keys, values, strict=True)), code


def sweep_claim_code_issues(*, now=None):
    """The periodic clean-up: destroy the codes nobody downloaded in time, and those of imports that
    ended without importing. Returns how many issues were destroyed."""
    now = now or timezone.now()
    expired = ClaimCodeIssue.objects.filter(status=ClaimCodeIssue.Status.READY, expires_at__lt=now)
    orphaned = ClaimCodeIssue.objects.filter(status=ClaimCodeIssue.Status.STAGED).exclude(
        import_job__status__in=["pending", "validating", "validated", "importing"]
    )
    issues = [*expired, *orphaned]
    for issue in issues:
        destroy_codes(issue)
    _delete_stray_files(now)
    return len(issues)


def _delete_stray_files(now):
    """Files no live issue names: an issue rolled back after its file was written, or a writer
    that died mid-way (its .part file)."""
    folder = code_file_path("x").parent
    if not folder.is_dir():
        return
    live = {
        str(code)
        for code in ClaimCodeIssue.objects.filter(
            status__in=[ClaimCodeIssue.Status.STAGED, ClaimCodeIssue.Status.READY]
        ).values_list("code", flat=True)
    }
    cutoff = (now - STRAY_AFTER).timestamp()
    for path in folder.iterdir():
        if path.name.split(".")[0] not in live and path.stat().st_mtime < cutoff:
            path.unlink(missing_ok=True)
