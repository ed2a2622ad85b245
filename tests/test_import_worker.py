"""A large serial list imported through the admin by a real Celery worker process."""

from datetime import timedelta

import pytest
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone

from vendors.imports import resume_import, sweep_import_jobs
from vendors.models import ApprovedIdentity, ImportJob, ImportRow
from vendors.tasks import validate_job_file

from .conftest import wait_for
from .factories import DeviceModelFactory, VendorStaffFactory, serial_list_csv

ROWS = 30_000


@pytest.mark.worker
def test_real_worker_validates_and_imports_a_large_upload(shared_media_root, celery_worker_process, client):
    device_model = DeviceModelFactory()
    client.force_login(VendorStaffFactory(vendor=device_model.vendor).user)
    upload = SimpleUploadedFile("factory.csv", serial_list_csv(ROWS) + b"WK-0000001,02:40:00:00:00:01\n")
    response = client.post(reverse("admin:vendors_devicemodel_upload", args=[device_model.pk]), {"file": upload})
    job = ImportJob.objects.get()
    assert response.url == reverse("admin:vendors_importjob_change", args=[job.pk])

    wait_for(lambda: ImportJob.objects.get(pk=job.pk).status == "validated", timeout=60)
    job.refresh_from_db()
    assert (job.rows_total, job.rows_bad) == (ROWS + 1, 1)
    assert job.bad_rows[0]["line"] == ROWS + 2
    assert not ApprovedIdentity.objects.exists()

    client.post(reverse("admin:vendors_importjob_decide", args=[job.pk]), {"decision": "import"})
    wait_for(lambda: ImportJob.objects.get(pk=job.pk).status == "imported", timeout=60)
    assert ApprovedIdentity.objects.filter(device_model=device_model).count() == ROWS
    assert not ImportRow.objects.filter(job=job).exists()
    wait_for(lambda: not list(shared_media_root.rglob("*.csv")))  # the upload is deleted once imported
    page = client.get(reverse("admin:vendors_importjob_change", args=[job.pk]))
    assert f"{ROWS} of {ROWS + 1} rows were added" in page.text


def test_a_job_left_half_validated_by_a_dead_worker_resumes_from_scratch(
    shared_media_root, acme_model, django_capture_on_commit_callbacks
):
    job = ImportJob.objects.create(device_model=acme_model, source_name="f.csv", status="validating", progress=40)
    job.file.save("f.csv", ContentFile(serial_list_csv(10)))
    ImportRow.objects.bulk_create(ImportRow(job=job, line=n, identifier_1=f"HALF-{n}") for n in range(2, 7))
    with django_capture_on_commit_callbacks(execute=True):
        assert resume_import(job, now=timezone.now() + timedelta(minutes=10))
    job.refresh_from_db()
    assert (job.status, job.rows_total, job.rows_bad) == ("validated", 10, 0)
    assert not ImportRow.objects.filter(job=job, identifier_1__startswith="HALF-").exists()


def test_a_validation_that_reported_progress_recently_is_not_resumed(acme_model):
    job = ImportJob.objects.create(device_model=acme_model, source_name="f.csv", status="validating")
    assert not resume_import(job)


def test_the_sweeper_resumes_dead_jobs_and_cancels_abandoned_ones(
    shared_media_root, acme_model, django_capture_on_commit_callbacks
):
    later = timezone.now() + timedelta(days=8)
    dead = ImportJob.objects.create(device_model=acme_model, source_name="dead.csv", status="validating")
    dead.file.save("dead.csv", ContentFile(serial_list_csv(3)))
    abandoned = ImportJob.objects.create(device_model=acme_model, source_name="old.csv", status="validated")
    ImportRow.objects.create(job=abandoned, line=2, identifier_1="OLD-1")
    running = ImportJob.objects.create(device_model=acme_model, source_name="new.csv", status="validating")
    ImportJob.objects.filter(pk=running.pk).update(updated_at=later)

    with django_capture_on_commit_callbacks(execute=True):
        assert sweep_import_jobs(now=later) == (1, 1)

    statuses = dict(ImportJob.objects.values_list("source_name", "status"))
    assert statuses == {"dead.csv": "validated", "old.csv": "cancelled", "new.csv": "validating"}
    assert not ImportRow.objects.filter(job=abandoned).exists()


def test_a_job_whose_upload_is_gone_is_refused_not_retried_forever(acme_model):
    job = ImportJob.objects.create(device_model=acme_model, source_name="lost.csv", file="imports/lost.csv")
    validate_job_file(job.pk)
    job.refresh_from_db()
    assert (job.status, job.problem) == ("failed", "The uploaded file is no longer there; upload it again.")
