"""Importing a serial list: validation report, bad input, all-or-nothing, and the CLI."""

import io
import os
import pty
import subprocess
import sys

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.db.utils import DatabaseError

from vendors.claim_codes import format_claim_code, generate_claim_code, hash_claim_code
from vendors.code_files import code_file_path, read_code_file
from vendors.imports import cancel_import, import_file, import_validated_rows, validate_import
from vendors.models import ApprovedIdentity, ClaimCodeIssue, ImportJob, ImportRow

from .conftest import approved_meanwhile, database_url_for_subprocess
from .factories import ApprovedIdentityFactory, DeviceModelFactory, shipped_method

HEADER = "serial_number,mac_address\n"


def rows(count, start=0):
    return "".join(f"SN-{n:06d},02:00:00:00:{n >> 8 & 255:02X}:{n & 255:02X}\n" for n in range(start, start + count))


def validate(device_model, content):
    data = content.encode() if isinstance(content, str) else content
    job = ImportJob.objects.create(device_model=device_model, source_name="list.csv")
    return validate_import(job, io.BytesIO(data), size=len(data))


def test_good_file_is_validated_without_writing_to_the_serial_list(acme_model):
    job = validate(acme_model, HEADER + rows(3))
    assert (job.status, job.rows_total, job.rows_bad) == ("validated", 3, 0)
    assert not ApprovedIdentity.objects.exists()


def test_import_adds_the_normalized_rows(acme_model):
    job = validate(acme_model, HEADER + "ah2-0001 , aa-bb-cc-dd-ee-ff\n")
    job = import_validated_rows(job)
    assert (job.status, job.rows_imported) == ("imported", 1)
    identity = ApprovedIdentity.objects.get()
    assert (identity.identifier_1, identity.identifier_2) == ("AH2-0001", "AA:BB:CC:DD:EE:FF")
    assert not ImportRow.objects.filter(job=job).exists()


def test_importing_one_job_keeps_the_rows_another_job_has_staged(acme_model):
    earlier = validate(acme_model, HEADER + rows(3))
    later = validate(acme_model, HEADER + rows(2, start=10))
    import_validated_rows(later)
    assert ImportRow.objects.filter(job=earlier).count() == 3
    import_validated_rows(earlier)
    assert not ImportRow.objects.exists()
    assert ApprovedIdentity.objects.count() == 5


def test_report_lists_bad_rows_with_line_numbers_and_reasons(acme_model):
    ApprovedIdentityFactory(device_model=acme_model, identifier_1="SN-APPROVED", identifier_2="02:00:00:00:99:99")
    content = (
        HEADER
        + "SN-1,02:00:00:00:00:01\n"  # line 2: good
        + "SN-1,02:00:00:00:00:02\n"  # line 3: serial repeats line 2
        + "SN-3,not-a-mac\n"  # line 4: format
        + "SN-APPROVED,02:00:00:00:00:04\n"  # line 5: already approved
        + "SN-5\n"  # line 6: too few values
    )
    job = validate(acme_model, content)
    assert (job.rows_total, job.rows_bad) == (5, 4)
    report = {row["line"]: row["message"] for row in job.bad_rows}
    assert report[3] == "serial_number: SN-1 is also on line 2."
    assert report[4].startswith("mac_address: This is not a valid MAC address")
    assert report[5] == "serial_number: SN-APPROVED is already on this model's serial list."
    assert report[6] == "Expected 2 values, found 1."


def test_importing_after_a_report_adds_only_the_good_rows(acme_model):
    job = validate(acme_model, HEADER + "SN-1,02:00:00:00:00:01\nSN-1,02:00:00:00:00:02\n")
    job = import_validated_rows(job)
    assert job.rows_imported == 1
    assert list(ApprovedIdentity.objects.values_list("identifier_2", flat=True)) == ["02:00:00:00:00:01"]


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"", "The file is empty"),
        (b"\n\n", "The file is empty"),
        (HEADER.encode(), "The file has a header but no rows."),
        (b"serial,mac\nSN-1,02:00:00:00:00:01\n", "The first line must name this model's identifier fields"),
        (b"cloud_id\nABCDEFGHJKMNPQRT\n", "(found: cloud_id)"),
        (HEADER.encode() + b"SN-\xe9,02:00:00:00:00:01\n", "Line 2 is not UTF-8 text"),
        (b"serial_number,mac_address," + b"x" * 10_000_000 + b"\n", "Line 1 cannot be read as CSV: field larger"),
    ],
    ids=["empty", "blank-lines-only", "header-only", "wrong-header", "another-models-columns", "not-utf8", "10mb-line"],
)
def test_unreadable_files_are_refused_with_a_clear_message(acme_model, content, problem):
    job = validate(acme_model, content)
    assert job.status == "failed"
    assert problem in job.problem
    assert not ImportRow.objects.filter(job=job).exists()
    assert import_validated_rows(job).status == "failed"
    assert not ApprovedIdentity.objects.exists()


def test_bom_blank_lines_quoted_commas_and_trailing_spaces_are_handled(acme_model):
    content = '\ufeffmac_address,serial_number\r\n\r\n"02:00:00:00:00:01","SN-1 "\r\n\r\n02-00-00-00-00-02 ,"SN-2"\r\n'
    job = validate(acme_model, content)
    assert (job.status, job.rows_total, job.rows_bad) == ("validated", 2, 0)
    import_validated_rows(job)
    assert set(ApprovedIdentity.objects.values_list("identifier_1", "identifier_2")) == {
        ("SN-1", "02:00:00:00:00:01"),
        ("SN-2", "02:00:00:00:00:02"),
    }


def test_a_quoted_value_with_a_comma_is_one_value_and_fails_the_format_check(acme_model):
    job = validate(acme_model, HEADER + '"SN,1",02:00:00:00:00:01\n')
    assert job.bad_rows == [
        {
            "line": 2,
            "message": "serial_number: This is not a valid Serial number: expected "
            "3 to 32 letters, digits or dashes, e.g. AH2-260001.",
        }
    ]


def test_too_many_rows_are_refused(acme_model, settings):
    settings.IMPORT_MAX_ROWS = 3
    job = validate(acme_model, HEADER + rows(4))
    assert job.status == "failed"
    assert "more than 3 rows" in job.problem


def test_validating_again_starts_from_scratch(acme_model):
    job = validate(acme_model, HEADER + rows(5))
    job.refresh_from_db()
    validate_import(job, io.BytesIO((HEADER + rows(2)).encode()))
    assert ImportRow.objects.filter(job=job).count() == 2
    assert job.rows_total == 2


def test_importing_twice_imports_once(acme_model):
    job = validate(acme_model, HEADER + rows(3))
    import_validated_rows(job)
    assert import_validated_rows(job).rows_imported == 3
    assert ApprovedIdentity.objects.count() == 3


def test_a_value_approved_meanwhile_is_skipped_not_duplicated(acme_model):
    job = validate(acme_model, HEADER + rows(3))
    ApprovedIdentityFactory(device_model=acme_model, identifier_1="SN-000001", identifier_2="02:00:00:00:99:01")
    job = import_validated_rows(job)
    assert job.rows_imported == 2
    assert ApprovedIdentity.objects.filter(identifier_1="SN-000001").count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_value_approved_by_a_transaction_still_open_is_skipped_once_it_commits(acme_model):
    """The import waits for the other writer (the table lock) and does not deadlock with its
    foreign-key check on the device model."""
    job = validate(acme_model, HEADER + rows(3))
    with approved_meanwhile(acme_model, "SN-000001", "02:00:00:00:99:01") as waited:
        job = import_validated_rows(job)
    assert waited.is_set()
    assert job.rows_imported == 2
    assert ApprovedIdentity.objects.filter(identifier_1="SN-000001").count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_failure_half_way_through_the_import_leaves_nothing_written(acme_model):
    job = validate(acme_model, HEADER + rows(1000))
    with connection.cursor() as cursor:
        # A database failure at the 500th row, raised from inside the INSERT ... SELECT.
        cursor.execute(
            """
            CREATE FUNCTION fail_half_way() RETURNS trigger AS $$
            BEGIN
              IF NEW.identifier_1 = 'SN-000500' THEN RAISE EXCEPTION 'injected failure at row 500'; END IF;
              RETURN NEW;
            END $$ LANGUAGE plpgsql;
            CREATE TRIGGER fail_half_way BEFORE INSERT ON vendors_approvedidentity
              FOR EACH ROW EXECUTE FUNCTION fail_half_way();
            """
        )
    try:
        with pytest.raises(DatabaseError, match="injected failure"):
            import_validated_rows(job)
        assert ApprovedIdentity.objects.count() == 0
        job.refresh_from_db()
        assert job.status == "validated"  # so it can be retried
        assert ImportRow.objects.filter(job=job).count() == 1000
    finally:
        with connection.cursor() as cursor:
            cursor.execute("DROP TRIGGER fail_half_way ON vendors_approvedidentity; DROP FUNCTION fail_half_way();")
    assert import_validated_rows(job).rows_imported == 1000


def run_cli(device_model, path, *args):
    out, err = io.StringIO(), io.StringIO()
    call_command(
        "import_identities",
        "--vendor",
        device_model.vendor.slug,
        "--model",
        device_model.slug,
        str(path),
        *args,
        stdout=out,
        stderr=err,
    )
    return out.getvalue(), err.getvalue()


def test_cli_imports_a_good_file_and_prints_a_one_line_summary(acme_model, tmp_path):
    path = tmp_path / "list.csv"
    path.write_text(HEADER + rows(4))
    out, _ = run_cli(acme_model, path)
    assert out.count("\n") == 1
    assert out.startswith(f"{path}: imported 4 of 4 rows into acme/hub-2 in ")
    assert ApprovedIdentity.objects.count() == 4


def test_cli_dry_run_validates_only(acme_model, tmp_path):
    path = tmp_path / "list.csv"
    path.write_text(HEADER + rows(4))
    out, _ = run_cli(acme_model, path, "--dry-run")
    assert out == f"{path}: all 4 rows are good (dry run, nothing imported).\n"
    assert not ApprovedIdentity.objects.exists()
    assert not ImportRow.objects.exists()


def test_cli_exits_1_with_the_reasons_when_rows_are_bad_and_imports_nothing(acme_model, tmp_path):
    path = tmp_path / "list.csv"
    path.write_text(HEADER + rows(2) + "SN-9,zz\n")
    err = io.StringIO()
    with pytest.raises(CommandError, match="1 of 3 rows are bad; nothing imported") as raised:
        call_command("import_identities", "--vendor", "acme", "--model", "hub-2", str(path), stderr=err)
    assert raised.value.returncode == 1
    assert "line 4: mac_address: This is not a valid MAC address" in err.getvalue()
    assert not ApprovedIdentity.objects.exists()


def test_cli_exits_1_when_the_file_is_refused(acme_model, tmp_path):
    path = tmp_path / "list.csv"
    path.write_text("cloud_id\nX\n")
    with pytest.raises(CommandError, match="refused, nothing imported. The first line must name") as raised:
        run_cli(acme_model, path)
    assert raised.value.returncode == 1


def test_cli_exits_2_for_an_unknown_model_or_a_missing_file(acme_model, tmp_path):
    with pytest.raises(CommandError, match="No model 'nope' of vendor 'acme'") as raised:
        call_command("import_identities", "--vendor", "acme", "--model", "nope", str(tmp_path / "x.csv"))
    assert raised.value.returncode == 2
    with pytest.raises(CommandError, match="Cannot read") as raised:
        run_cli(acme_model, tmp_path / "missing.csv")
    assert raised.value.returncode == 2


def test_cli_cannot_import_into_another_vendors_model_by_slug_mix(acme_model, globex_model, tmp_path):
    path = tmp_path / "list.csv"
    path.write_text(HEADER + rows(1))
    with pytest.raises(CommandError) as raised:
        call_command("import_identities", "--vendor", "acme", "--model", globex_model.slug, str(path))
    assert raised.value.returncode == 2


def test_cli_works_on_the_embedded_sqlite_database(tmp_path):
    """The default, nothing-running setup: staging by plain INSERT instead of COPY."""
    env = os.environ | {
        "DJANGO_SETTINGS_MODULE": "config.settings.local",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'portal.sqlite3'}",
        "REDIS_URL": "",
    }
    manage = [sys.executable, "manage.py"]
    subprocess.run([*manage, "migrate", "-v0"], env=env, check=True)
    subprocess.run([*manage, "seed_demo"], env=env, check=True, capture_output=True)
    path = tmp_path / "list.csv"
    path.write_text(HEADER + rows(3) + "SN-000001,02:00:00:00:09:09\n")
    refused = subprocess.run(
        [*manage, "import_identities", "--vendor", "acme", "--model", "hub-2", str(path)],
        env=env,
        capture_output=True,
        text=True,
    )
    assert refused.returncode == 1
    assert "line 5: serial_number: SN-000001 is also on line 3." in refused.stderr
    path.write_text(HEADER + rows(3))
    done = subprocess.run(
        [*manage, "import_identities", "--vendor", "acme", "--model", "hub-2", str(path)],
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert "imported 3 of 3 rows into acme/hub-2" in done.stdout


def test_a_models_claiming_method_is_fixed_once_it_has_approved_units(acme_model):
    acme_model.claiming_method = shipped_method("cloud-id")
    acme_model.full_clean()  # no units yet: allowed
    acme_model.save()
    ApprovedIdentityFactory(device_model=acme_model)
    acme_model.claiming_method = shipped_method("serial-mac")
    with pytest.raises(ValidationError, match="its claiming method cannot change"):
        acme_model.full_clean()


@pytest.mark.django_db(transaction=True)
def test_cli_draws_a_progress_bar_on_a_terminal(tmp_path):
    """Run as a user would, with stderr on a pseudo-terminal, against the (committed) test database."""
    device_model = DeviceModelFactory()
    path = tmp_path / "list.csv"
    path.write_text(HEADER + rows(3))
    env = os.environ | {"DJANGO_SETTINGS_MODULE": "config.settings.test", "DATABASE_URL": database_url_for_subprocess()}
    controller, terminal = pty.openpty()
    command = ["import_identities", "--vendor", device_model.vendor.slug, "--model", device_model.slug, str(path)]
    done = subprocess.run(
        [sys.executable, "manage.py", *command], env=env, stdout=subprocess.PIPE, stderr=terminal, text=True
    )
    os.close(terminal)
    drawn = os.read(controller, 65536).decode()
    os.close(controller)
    assert done.returncode == 0
    assert "\rValidating [########################################] 100%" in drawn
    assert done.stdout.count("\n") == 1


# Claim codes in the serial list: a model whose claiming method requires them.
@pytest.fixture
def cam_model(acme_model, shared_media_root):
    """Acme Cam 1, claimed by serial number + claim code; generated codes wait in a temporary folder."""
    return DeviceModelFactory(
        vendor=acme_model.vendor, slug="cam-1", name="Acme Cam 1", claiming_method=shipped_method("serial-claim-code")
    )


@pytest.mark.parametrize(
    "typed",
    [
        str,
        format_claim_code,
        lambda code: f"{code[:4]} {code[4:7]} {code[7:]}",
        lambda code: f" {code[:2]}-{code[2:]} ",
    ],
    ids=["digits", "dashes", "spaces", "mixed"],
)
def test_a_claim_code_column_in_any_typed_form_is_imported_as_its_hash_only(cam_model, typed):
    code = generate_claim_code()
    job = import_validated_rows(validate(cam_model, f"claim_code,serial_number\n{typed(code)},cam1-0001\n"))
    assert (job.status, job.rows_imported) == ("imported", 1)
    identity = ApprovedIdentity.objects.get(device_model=cam_model)
    assert identity.identifier_1 == "CAM1-0001"
    assert identity.claim_code_hash == hash_claim_code(code)
    assert not ClaimCodeIssue.objects.exists()  # the vendor has these codes already


def test_a_claim_code_with_a_typo_is_reported_on_its_line(cam_model):
    code = generate_claim_code()
    typo = code[:-1] + str((int(code[-1]) + 1) % 10)
    job = validate(cam_model, f"serial_number,claim_code\nCAM1-0001,{code}\nCAM1-0002,{typo}\nCAM1-0003,123\n")
    report = {row["line"]: row["message"] for row in job.bad_rows}
    assert report[3].startswith("claim_code: This claim code has a typo")
    assert report[4] == "claim_code: A claim code is 11 digits, e.g. 1234-567-8901."
    assert job.rows_bad == 2


def test_a_claim_code_repeated_in_the_list_is_reported_with_its_first_line_and_not_shown(cam_model):
    code = generate_claim_code()
    job = validate(cam_model, f"serial_number,claim_code\nCAM1-0001,{code}\nCAM1-0002,{format_claim_code(code)}\n")
    assert job.bad_rows == [{"line": 3, "message": "claim_code: the same code is also on line 2."}]


def test_a_claim_code_column_is_refused_for_a_model_without_claim_codes(acme_model):
    job = validate(acme_model, HEADER.strip() + ",claim_code\nSN-1,02:00:00:00:00:01," + generate_claim_code() + "\n")
    assert job.status == "failed"
    assert "takes no claim codes: remove the claim_code column" in job.problem


def test_the_command_line_imports_claim_codes_in_one_pass_and_reports_a_repeat_with_its_line(cam_model, tmp_path):
    first, second = generate_claim_code(), generate_claim_code()
    good = tmp_path / "good.csv"
    good.write_text(f"serial_number,claim_code\nCAM1-0001,{first}\nCAM1-0002,{second}\n")
    call_command("import_identities", "--vendor", "acme", "--model", "cam-1", str(good), stdout=io.StringIO())
    assert set(ApprovedIdentity.objects.values_list("claim_code_hash", flat=True)) == {
        hash_claim_code(first),
        hash_claim_code(second),
    }
    repeated = tmp_path / "repeated.csv"
    repeated.write_text(f"serial_number,claim_code\nCAM1-0003,{first}\nCAM1-0004,{first}\n")
    err = io.StringIO()
    with pytest.raises(CommandError):
        call_command("import_identities", "--vendor", "acme", "--model", "cam-1", str(repeated), stderr=err)
    assert "line 3: claim_code: the same code is also on line 2." in err.getvalue()
    assert ApprovedIdentity.objects.count() == 2


@pytest.mark.parametrize("path", ["staged", "one pass"])
def test_without_a_claim_code_column_each_unit_gets_a_generated_code_offered_once(cam_model, tmp_path, path):
    content = "serial_number\n" + "".join(f"CAM1-{n:04d}\n" for n in range(50))
    if path == "staged":
        job = import_validated_rows(validate(cam_model, content))
    else:
        job = ImportJob.objects.create(device_model=cam_model, source_name="list.csv")
        job = import_file(job, io.BytesIO(content.encode()), size=len(content))
    assert (job.status, job.rows_imported) == ("imported", 50)
    hashes = list(ApprovedIdentity.objects.values_list("claim_code_hash", flat=True))
    assert len(set(hashes)) == 50
    assert all(len(h) == 64 for h in hashes)
    issue = ClaimCodeIssue.objects.get(import_job=job)
    assert (issue.status, issue.units, issue.reason) == ("ready", 50, "import")


def test_the_generated_codes_of_rows_left_out_are_not_offered(cam_model):
    ApprovedIdentityFactory(device_model=cam_model, identifier_1="CAM1-TAKEN", identifier_2=None)
    job = validate(cam_model, "serial_number\nCAM1-0001\nCAM1-TAKEN\nCAM1-0003\n")
    assert job.rows_bad == 1
    import_validated_rows(job)
    issue = ClaimCodeIssue.objects.get(import_job=job)
    with code_file_path(issue.code).open("rb") as source:
        offered = {values[0]: code for _line, values, code in read_code_file(source)}
    assert set(offered) == {"CAM1-0001", "CAM1-0003"}
    for serial, code in offered.items():
        assert ApprovedIdentity.objects.get(identifier_1=serial).claim_code_hash == hash_claim_code(code)
    assert issue.units == 2


def test_a_cancelled_or_refused_import_destroys_the_codes_it_generated(cam_model):
    cancelled = validate(cam_model, "serial_number\nCAM1-0001\n")
    issue = ClaimCodeIssue.objects.get(import_job=cancelled)
    assert code_file_path(issue.code).exists()
    cancel_import(cancelled)
    issue.refresh_from_db()
    assert issue.status == "destroyed"
    assert not code_file_path(issue.code).exists()
    assert not ApprovedIdentity.objects.filter(device_model=cam_model).exists()


def test_the_command_line_says_where_to_download_the_codes_it_generated(cam_model, tmp_path, settings):
    settings.PORTAL_ORIGIN = "https://portal.example"
    path = tmp_path / "cams.csv"
    path.write_text("serial_number\nCAM1-0001\nCAM1-0002\n")
    out = io.StringIO()
    call_command("import_identities", "--vendor", "acme", "--model", "cam-1", str(path), stdout=out)
    issue = ClaimCodeIssue.objects.get()
    assert (
        f"Claim codes were generated for the 2 units: download them, once, at "
        f"https://portal.example/admin/vendors/claimcodeissue/{issue.pk}/change/" in out.getvalue()
    )
