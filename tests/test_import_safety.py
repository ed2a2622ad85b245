"""Serial-list imports survive a PostgreSQL crash between validation and import, and refuse files
larger than IMPORT_MAX_UPLOAD_BYTES before anything reads them.

The staging table is UNLOGGED: when PostgreSQL recovers from a crash (or an immediate shutdown),
it replaces every UNLOGGED table with an empty one. These tests do to the staged rows what the
recovery does, with a TRUNCATE, rather than crash the database server the other tests share.
"""

import io

import pytest
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.urls import reverse

from vendors.imports import import_validated_rows, validate_import, validate_upload
from vendors.models import ApprovedIdentity, ImportJob, ImportRow

from .factories import serial_list_csv

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def uploads_in_tmp(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path


def crash_recovery_empties_the_staging_table():
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE vendors_importrow")


def test_an_upload_whose_staged_rows_were_lost_is_validated_again_and_imported(
    acme_admin_client, acme_model, django_capture_on_commit_callbacks
):
    content = serial_list_csv(3) + b"WK-9,not-a-mac\n"
    with django_capture_on_commit_callbacks(execute=True):
        acme_admin_client.post(
            reverse("admin:vendors_devicemodel_upload", args=[acme_model.pk]),
            {"file": SimpleUploadedFile("list.csv", content)},
        )
    job = ImportJob.objects.get()
    assert (job.status, job.rows_total, job.rows_bad) == (ImportJob.Status.VALIDATED, 4, 1)

    crash_recovery_empties_the_staging_table()
    with django_capture_on_commit_callbacks(execute=True):
        acme_admin_client.post(reverse("admin:vendors_importjob_decide", args=[job.pk]), {"decision": "import"})

    page = acme_admin_client.get(reverse("admin:vendors_importjob_change", args=[job.pk]))
    assert "3 of 4 rows were added to the serial list; 1 bad rows were left out" in page.text
    assert ApprovedIdentity.objects.filter(device_model=acme_model).count() == 3
    assert not ImportRow.objects.exists()


def test_a_job_without_its_file_whose_staged_rows_were_lost_is_refused_saying_so(acme_model):
    data = serial_list_csv(3)
    job = ImportJob.objects.create(device_model=acme_model, source_name="list.csv")
    validate_import(job, io.BytesIO(data), size=len(data))
    crash_recovery_empties_the_staging_table()
    ImportJob.objects.filter(pk=job.pk).update(status=ImportJob.Status.IMPORTING)

    job = import_validated_rows(job)

    job.refresh_from_db()
    assert job.status == ImportJob.Status.FAILED
    assert "validated rows were lost" in job.problem
    assert "nothing was imported" in job.problem
    assert job.rows_imported == 0
    assert not ApprovedIdentity.objects.exists()


def test_an_import_whose_staged_rows_are_all_there_imports_them(acme_model):
    data = serial_list_csv(3)
    job = ImportJob.objects.create(device_model=acme_model, source_name="list.csv")
    validate_import(job, io.BytesIO(data), size=len(data))
    job = import_validated_rows(job)
    assert (job.status, job.rows_imported) == (ImportJob.Status.IMPORTED, 3)


def test_the_upload_page_refuses_a_file_over_the_limit_with_a_clear_message(acme_admin_client, acme_model, settings):
    settings.IMPORT_MAX_UPLOAD_BYTES = 1000
    response = acme_admin_client.post(
        reverse("admin:vendors_devicemodel_upload", args=[acme_model.pk]),
        {"file": SimpleUploadedFile("huge.csv", serial_list_csv(100))},
    )
    assert response.status_code == 200
    assert "larger than" in response.text
    assert "1000 bytes" in response.text.replace("\xa0", " ")
    assert not ImportJob.objects.exists()


def test_the_worker_refuses_a_file_over_the_limit_without_reading_it(acme_model, settings):
    # Not UTF-8 either: a worker that read it would refuse it for that instead.
    job = ImportJob.objects.create(device_model=acme_model, source_name="huge.csv")
    job.file.save("huge.csv", ContentFile(b"serial_number,mac_address\n\xff\xfe" * 100))
    settings.IMPORT_MAX_UPLOAD_BYTES = 1000

    validate_upload(job)

    job.refresh_from_db()
    assert job.status == ImportJob.Status.FAILED
    assert "larger than" in job.problem
    assert not ImportRow.objects.exists()


def test_the_command_line_refuses_a_file_over_the_limit(acme_model, settings, tmp_path):
    path = tmp_path / "huge.csv"
    path.write_bytes(serial_list_csv(100))
    settings.IMPORT_MAX_UPLOAD_BYTES = 1000
    with pytest.raises(CommandError, match="refused, nothing imported. The file is larger than") as raised:
        call_command("import_identities", "--vendor", "acme", "--model", "hub-2", str(path), stderr=io.StringIO())
    assert raised.value.returncode == 1
    assert not ApprovedIdentity.objects.exists()


@pytest.fixture
def cam_model(acme_model):
    from .factories import DeviceModelFactory, shipped_method

    return DeviceModelFactory(
        vendor=acme_model.vendor, slug="cam-1", name="Acme Cam 1", claiming_method=shipped_method("serial-claim-code")
    )


def upload(client, device_model, content, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        client.post(
            reverse("admin:vendors_devicemodel_upload", args=[device_model.pk]),
            {"file": SimpleUploadedFile("cams.csv", content)},
        )
    return ImportJob.objects.get()


def test_an_upload_with_claim_codes_is_deleted_once_only_their_hashes_are_staged(
    acme_admin_client, cam_model, tmp_path, django_capture_on_commit_callbacks
):
    content = b"serial_number,claim_code\nCAM1-0001,8294-816-4301\nCAM1-0002,not-a-code\n"
    job = upload(acme_admin_client, cam_model, content, django_capture_on_commit_callbacks)
    assert (job.status, job.rows_bad) == (ImportJob.Status.VALIDATED, 1)
    assert not job.file
    assert not [path for path in tmp_path.rglob("*") if path.is_file() and b"8294" in path.read_bytes()]


def test_an_upload_with_claim_codes_whose_staged_rows_were_lost_asks_for_the_file_again(
    acme_admin_client, cam_model, django_capture_on_commit_callbacks
):
    content = b"serial_number,claim_code\nCAM1-0001,8294-816-4301\n"
    job = upload(acme_admin_client, cam_model, content, django_capture_on_commit_callbacks)
    crash_recovery_empties_the_staging_table()
    with django_capture_on_commit_callbacks(execute=True):
        acme_admin_client.post(reverse("admin:vendors_importjob_decide", args=[job.pk]), {"decision": "import"})
    job.refresh_from_db()
    assert job.status == ImportJob.Status.FAILED
    assert "nothing was imported" in job.problem
    assert "Upload the file again" in job.problem
    assert not ApprovedIdentity.objects.exists()


def test_an_upload_whose_codes_the_portal_generates_is_kept_until_the_import(
    acme_admin_client, cam_model, django_capture_on_commit_callbacks
):
    job = upload(acme_admin_client, cam_model, b"serial_number\nCAM1-0001\n", django_capture_on_commit_callbacks)
    assert job.status == ImportJob.Status.VALIDATED
    assert job.file  # it holds no secret: a lost staging table is validated again from it
