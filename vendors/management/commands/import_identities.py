"""`manage.py import_identities --vendor SLUG --model SLUG FILE.csv [--dry-run]`: the admin upload, from a shell."""

import os
import sys
import time
from urllib.parse import urljoin

from django.core.management.base import BaseCommand, CommandError
from django.urls import reverse

from portal.links import portal_origin
from vendors.imports import REPORTED_BAD_ROWS, cancel_import, import_file, validate_import
from vendors.models import ClaimCodeIssue, DeviceModel, ImportJob

# Exit statuses: 0 all rows good (and imported), 1 bad rows or a refused file (nothing imported), 2 usage.
EXIT_BAD_INPUT = 1
EXIT_USAGE = 2
SHOWN_BAD_ROWS = 20


class Command(BaseCommand):
    help = (
        "Validate a CSV serial list for one model and, when every row is good, add it to the model's "
        "serial list in one transaction. Exit status 0 when all rows were good, 1 otherwise (nothing written)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--vendor", required=True, help="The vendor's slug.")
        parser.add_argument("--model", required=True, help="The device model's slug.")
        parser.add_argument("file", help="CSV file whose header names the model's identifier fields.")
        parser.add_argument("--dry-run", action="store_true", help="Validate only; write nothing.")

    def handle(self, *args, vendor, model, file, dry_run, **options):
        device_model = (
            DeviceModel.objects.select_related("vendor", "claiming_method")
            .filter(vendor__slug=vendor, slug=model)
            .first()
        )
        if device_model is None:
            raise CommandError(f"No model {model!r} of vendor {vendor!r}.", returncode=EXIT_USAGE)
        try:
            stream = open(file, "rb")  # noqa: SIM115 (closed below, after validation)
        except OSError as exc:
            raise CommandError(f"Cannot read {file}: {exc.strerror}.", returncode=EXIT_USAGE) from exc
        started = time.monotonic()
        job = ImportJob.objects.create(device_model=device_model, source_name=os.path.basename(file))
        with stream:
            job = (validate_import if dry_run else import_file)(
                job, stream, size=os.fstat(stream.fileno()).st_size, progress=self._progress_bar()
            )
        if job.status == ImportJob.Status.FAILED:
            self._end_progress()
            raise CommandError(f"{file}: refused, nothing imported. {job.problem}", returncode=EXIT_BAD_INPUT)
        if job.rows_bad:
            self._end_progress()
            for row in job.bad_rows[:SHOWN_BAD_ROWS]:
                self.stderr.write(f"line {row['line']}: {row['message']}")
            if job.rows_bad > SHOWN_BAD_ROWS:
                self.stderr.write(f"... and {job.rows_bad - SHOWN_BAD_ROWS} more bad rows")
            if job.rows_bad > REPORTED_BAD_ROWS:
                self.stderr.write(f"(the report keeps the first {REPORTED_BAD_ROWS})")
            cancel_import(job)
            raise CommandError(
                f"{file}: {job.rows_bad} of {job.rows_total} rows are bad; nothing imported.",
                returncode=EXIT_BAD_INPUT,
            )
        if dry_run:
            cancel_import(job)
            self._end_progress()
            self.stdout.write(f"{file}: all {job.rows_total} rows are good (dry run, nothing imported).")
            return
        self._end_progress()
        skipped = job.rows_total - job.rows_imported
        self.stdout.write(
            f"{file}: imported {job.rows_imported} of {job.rows_total} rows into {device_model.vendor.slug}/"
            f"{device_model.slug} in {time.monotonic() - started:.1f} s"
            + (f" ({skipped} approved meanwhile by someone else, skipped)." if skipped else ".")
        )
        issue = ClaimCodeIssue.objects.filter(import_job=job, status=ClaimCodeIssue.Status.READY).first()
        if issue is not None:
            page = reverse("admin:vendors_claimcodeissue_change", args=[issue.pk])
            if origin := portal_origin():
                where = f"at {urljoin(origin, page)}"
            else:
                where = f"at the admin path {page} (set DJANGO_PORTAL_ORIGIN to have the full address printed)"
            self.stdout.write(f"Claim codes were generated for the {issue.units} units: download them, once, {where}")

    def _progress_bar(self):
        if not sys.stderr.isatty():
            return None

        def show(percent):
            filled = percent * 40 // 100
            sys.stderr.write(f"\rValidating [{'#' * filled}{'.' * (40 - filled)}] {percent:3d}%")
            sys.stderr.flush()

        return show

    def _end_progress(self):
        if sys.stderr.isatty():
            sys.stderr.write("\n")
