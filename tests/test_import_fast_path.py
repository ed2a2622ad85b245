"""The command line's one-pass import (`import_file`): a good file is COPYed straight into the
serial list; a bad row, a repeat or a value already approved rolls everything back and ends in
the staged validation report, as the command has always given it."""

import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from vendors import import_staging, imports
from vendors.models import ApprovedIdentity, ImportJob, ImportRow

from .conftest import approved_meanwhile
from .factories import ApprovedIdentityFactory, DeviceModelFactory, serial_list_csv

ROWS = 2_500  # over several batches and chunks, with the sizes below


@pytest.fixture(autouse=True)
def small_batches(monkeypatch):
    """Batches of 1,000 rows COPYed 300 at a time, so a test file spans several COPY statements."""
    monkeypatch.setattr(import_staging, "BATCH_ROWS", 1_000)
    monkeypatch.setattr(import_staging, "CHUNK_ROWS", 300)


@pytest.fixture
def no_staged_validation(monkeypatch):
    """Fails the test if the import falls back to the staged path, which writes the staging table."""

    def write_batch(*args):
        raise AssertionError("the staged validation ran")

    monkeypatch.setattr(imports, "write_batch", write_batch)


def run_cli(device_model, path):
    out, err = io.StringIO(), io.StringIO()
    command = ["import_identities", "--vendor", device_model.vendor.slug, "--model", device_model.slug, str(path)]
    try:
        call_command(*command, stdout=out, stderr=err)
    except CommandError as exc:
        return exc.returncode, str(exc), err.getvalue()
    return 0, out.getvalue(), err.getvalue()


def write_list(tmp_path, extra=b""):
    path = tmp_path / "list.csv"
    path.write_bytes(serial_list_csv(ROWS) + extra)
    return path


def test_a_good_file_is_copied_straight_into_the_serial_list(acme_model, tmp_path, no_staged_validation):
    code, out, _ = run_cli(acme_model, write_list(tmp_path, b"wk-9999999 , 02-40-ff-ff-ff-ff\n"))
    assert code == 0
    assert f"imported {ROWS + 1} of {ROWS + 1} rows into acme/hub-2" in out
    assert ApprovedIdentity.objects.filter(device_model=acme_model, status="approved").count() == ROWS + 1
    assert ApprovedIdentity.objects.filter(identifier_1="WK-9999999", identifier_2="02:40:FF:FF:FF:FF").exists()
    assert ApprovedIdentity.objects.values("code").distinct().count() == ROWS + 1  # the database's UUIDs
    job = ImportJob.objects.get()
    assert (job.status, job.rows_total, job.rows_bad, job.rows_imported) == ("imported", ROWS + 1, 0, ROWS + 1)
    assert job.finished_at is not None
    assert not ImportRow.objects.exists()


def test_a_bad_row_late_in_the_file_leaves_nothing_written_and_is_reported(acme_model, tmp_path):
    code, message, err = run_cli(acme_model, write_list(tmp_path, b"WK-X,not-a-mac\n"))
    assert code == 1
    assert message.endswith(f"1 of {ROWS + 1} rows are bad; nothing imported.")
    assert err.startswith(f"line {ROWS + 2}: mac_address: This is not a valid MAC address")
    assert not ApprovedIdentity.objects.exists()  # the batches COPYed before it were rolled back
    job = ImportJob.objects.get()
    assert (job.status, job.rows_bad, job.rows_imported) == ("cancelled", 1, 0)
    assert not ImportRow.objects.exists()


def test_a_row_with_the_wrong_number_of_values_is_reported(acme_model, tmp_path):
    code, _, err = run_cli(acme_model, write_list(tmp_path, b"WK-9999999\n"))
    assert code == 1
    assert err == f"line {ROWS + 2}: Expected 2 values, found 1.\n"
    assert not ApprovedIdentity.objects.exists()


def test_a_repeat_within_the_file_is_reported_with_both_lines(acme_model, tmp_path):
    code, _, err = run_cli(acme_model, write_list(tmp_path, b"WK-0000007,02:40:FF:FF:FF:FF\n"))
    assert code == 1
    assert err == f"line {ROWS + 2}: serial_number: WK-0000007 is also on line 9.\n"
    assert not ApprovedIdentity.objects.exists()


def test_a_value_already_approved_is_reported_and_nothing_is_added(acme_model, tmp_path):
    ApprovedIdentityFactory(device_model=acme_model, identifier_1="SN-OLD", identifier_2="02:40:00:00:07:D0")
    code, message, err = run_cli(acme_model, write_list(tmp_path))
    assert code == 1
    assert message.endswith(f"1 of {ROWS} rows are bad; nothing imported.")
    assert err == "line 2002: mac_address: 02:40:00:00:07:D0 is already on this model's serial list.\n"
    assert ApprovedIdentity.objects.count() == 1


def test_another_models_values_do_not_conflict(acme_model, tmp_path, no_staged_validation):
    ApprovedIdentityFactory(
        device_model=DeviceModelFactory(), identifier_1="WK-0000001", identifier_2="02:40:00:00:00:01"
    )
    code, _, _ = run_cli(acme_model, write_list(tmp_path))
    assert code == 0
    assert ApprovedIdentity.objects.filter(device_model=acme_model).count() == ROWS


@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        (b"WK-\xe9,02:40:FF:FF:FF:FF\n", f"Line {ROWS + 2} is not UTF-8 text"),
        (b"WK-1," + b"0" * 200_000 + b"\n", f"Line {ROWS + 2} cannot be read as CSV: field larger"),
    ],
    ids=["not-utf8", "200-kb-field"],
)
def test_a_file_refused_half_way_leaves_nothing_written(acme_model, tmp_path, extra, problem):
    code, message, _ = run_cli(acme_model, write_list(tmp_path, extra))
    assert code == 1
    assert "refused, nothing imported." in message
    assert problem in message
    assert not ApprovedIdentity.objects.exists()
    assert ImportJob.objects.get().status == "failed"


def test_a_file_over_the_row_limit_is_refused_with_nothing_written(acme_model, tmp_path, settings):
    settings.IMPORT_MAX_ROWS = ROWS - 1
    code, message, _ = run_cli(acme_model, write_list(tmp_path))
    assert code == 1
    assert f"The file has more than {ROWS - 1:,} rows" in message
    assert not ApprovedIdentity.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_value_another_import_is_adding_at_the_same_moment_is_reported_not_duplicated(acme_model, tmp_path):
    """The other import has COPYed a value of this file but not committed yet: this one waits on the
    unique index, sees the value once the other commits, and falls back to the report."""
    with approved_meanwhile(acme_model, "SN-OTHER", "02:40:00:00:00:05") as waited:
        code, _, err = run_cli(acme_model, write_list(tmp_path))
    assert waited.is_set()
    assert code == 1
    assert err == "line 7: mac_address: 02:40:00:00:00:05 is already on this model's serial list.\n"
    assert list(ApprovedIdentity.objects.values_list("identifier_1", flat=True)) == ["SN-OTHER"]
