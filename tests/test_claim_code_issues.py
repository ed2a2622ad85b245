"""Generated claim codes reach the vendor once: the CSV and the label sheet, each downloaded one
time; then only a re-issue, which kills the old codes. The plaintext is never in the database."""

import csv
import io
import subprocess
from datetime import timedelta
from urllib.parse import urlsplit

import pypdfium2
import pytest
import zxingcpp
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone

from vendors.claim_codes import claim_code_generator, claim_code_matches, format_claim_code, verhoeff_check_digit
from vendors.code_files import CodeFileError, code_file_path, read_code_file
from vendors.code_issues import sweep_claim_code_issues
from vendors.imports import import_validated_rows, validate_import
from vendors.labels import parse_label_payload
from vendors.models import ApprovedIdentity, ClaimCodeIssue, ImportJob

from .conftest import database_url_for_subprocess, wait_for
from .factories import ApprovedIdentityFactory, DeviceModelFactory, VendorStaffFactory, shipped_method

UNITS = 30


@pytest.fixture
def cam_model(acme_model, shared_media_root):
    return DeviceModelFactory(
        vendor=acme_model.vendor, slug="cam-1", name="Acme Cam 1", claiming_method=shipped_method("serial-claim-code")
    )


def import_generated(device_model, count=UNITS):
    content = ("serial_number\n" + "".join(f"CAM1-{n:04d}\n" for n in range(count))).encode()
    job = ImportJob.objects.create(device_model=device_model, source_name="cams.csv")
    import_validated_rows(validate_import(job, io.BytesIO(content), size=len(content)))
    return ClaimCodeIssue.objects.get(import_job=job)


def download(client, issue, kind):
    name = {"csv": "vendors_claimcodeissue_csv", "labels": "vendors_claimcodeissue_labels"}[kind]
    return client.post(reverse(f"admin:{name}", args=[issue.pk]))


def label_payload_of(link):
    return urlsplit(link).path.removeprefix("/claim/label/").rstrip("/")


def read_csv(response):
    body = b"".join(response.streaming_content).decode()
    return list(csv.DictReader(io.StringIO(body)))


def test_the_codes_csv_downloads_once_and_each_code_matches_its_unit(acme_admin_client, cam_model):
    issue = import_generated(cam_model)
    response = download(acme_admin_client, issue, "csv")
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    rows = read_csv(response)
    assert len(rows) == UNITS
    for row in rows:
        unit = ApprovedIdentity.objects.get(device_model=cam_model, identifier_1=row["serial_number"])
        assert claim_code_matches(row["claim_code"], unit.claim_code_hash)
        label = parse_label_payload(label_payload_of(row["label_url"]))
        assert label == {
            "vendor": "acme",
            "model": "cam-1",
            "identifiers": {"serial_number": row["serial_number"]},
            "claim_code": row["claim_code"],
        }
    again = download(acme_admin_client, issue, "csv")
    assert again.status_code == 302
    assert "already taken" in str(list(again.wsgi_request._messages)[0])


def test_the_label_sheet_holds_one_decodable_qr_code_per_unit_with_its_serial_and_code(acme_admin_client, cam_model):
    issue = import_generated(cam_model)
    response = download(acme_admin_client, issue, "labels")
    assert response["Content-Type"] == "application/pdf"
    document = pypdfium2.PdfDocument(response.content)
    links, text = [], ""
    for page in document:
        links += [barcode.text for barcode in zxingcpp.read_barcodes(page.render(scale=3).to_pil())]
        text += page.get_textpage().get_text_range()
    assert len(links) == UNITS
    assert len(set(links)) == UNITS
    for link in links:
        label = parse_label_payload(label_payload_of(link))
        unit = ApprovedIdentity.objects.get(device_model=cam_model, identifier_1=label["identifiers"]["serial_number"])
        assert claim_code_matches(label["claim_code"], unit.claim_code_hash)
        assert unit.identifier_1 in text
        assert format_claim_code(label["claim_code"]) in text
    assert download(acme_admin_client, issue, "labels").status_code == 302


def test_the_codes_are_destroyed_once_both_downloads_are_taken(acme_admin_client, cam_model):
    issue = import_generated(cam_model)
    download(acme_admin_client, issue, "labels")
    assert code_file_path(issue.code).exists()
    assert download(acme_admin_client, issue, "csv").status_code == 200
    issue.refresh_from_db()
    assert issue.status == "destroyed"
    assert not code_file_path(issue.code).exists()
    page = acme_admin_client.get(reverse("admin:vendors_claimcodeissue_change", args=[issue.pk]))
    assert b"cannot be read back" in page.content


def test_codes_nobody_downloaded_in_time_are_destroyed_by_the_sweep(acme_admin_client, cam_model, settings):
    issue = import_generated(cam_model)
    sweep_claim_code_issues(now=timezone.now() + timedelta(hours=settings.CLAIM_CODE_DOWNLOAD_HOURS - 1))
    assert code_file_path(issue.code).exists()
    sweep_claim_code_issues(now=timezone.now() + timedelta(hours=settings.CLAIM_CODE_DOWNLOAD_HOURS + 1))
    assert not code_file_path(issue.code).exists()
    assert download(acme_admin_client, issue, "csv").status_code == 302


def test_the_import_page_links_to_the_codes_while_they_wait(acme_admin_client, cam_model):
    issue = import_generated(cam_model)
    page = acme_admin_client.get(reverse("admin:vendors_importjob_change", args=[issue.import_job.pk]))
    assert reverse("admin:vendors_claimcodeissue_change", args=[issue.pk]).encode() in page.content


def reissue(client, identities):
    return client.post(
        reverse("admin:vendors_approvedidentity_changelist"),
        {"action": "reissue", "_selected_action": [str(identity.pk) for identity in identities]},
    )


def test_reissuing_kills_the_old_code_and_offers_the_new_one_once(acme_admin_client, cam_model):
    first = import_generated(cam_model, count=3)
    old = {row["serial_number"]: row["claim_code"] for row in read_csv(download(acme_admin_client, first, "csv"))}
    unit = ApprovedIdentity.objects.get(identifier_1="CAM1-0001")
    response = reissue(acme_admin_client, [unit])
    issue = ClaimCodeIssue.objects.get(reason="reissue")
    assert response["Location"] == reverse("admin:vendors_claimcodeissue_change", args=[issue.pk])
    (row,) = read_csv(download(acme_admin_client, issue, "csv"))
    unit.refresh_from_db()
    assert not claim_code_matches(old["CAM1-0001"], unit.claim_code_hash)
    assert claim_code_matches(row["claim_code"], unit.claim_code_hash)
    other = ApprovedIdentity.objects.get(identifier_1="CAM1-0002")
    assert claim_code_matches(old["CAM1-0002"], other.claim_code_hash)  # not selected, untouched


def test_reissuing_skips_units_of_models_without_claim_codes(acme_admin_client, acme_model):
    unit = ApprovedIdentityFactory(device_model=acme_model)
    reissue(acme_admin_client, [unit])
    assert not ClaimCodeIssue.objects.exists()
    unit.refresh_from_db()
    assert unit.claim_code_hash == ""


def test_staff_of_another_vendor_can_neither_download_nor_reissue(client, cam_model, globex_model):
    issue = import_generated(cam_model)
    before = dict(ApprovedIdentity.objects.values_list("pk", "claim_code_hash"))
    client.force_login(VendorStaffFactory(vendor=globex_model.vendor).user)
    assert download(client, issue, "csv").status_code == 404
    assert download(client, issue, "labels").status_code == 404
    assert client.get(reverse("admin:vendors_claimcodeissue_change", args=[issue.pk])).status_code == 404
    reissue(client, ApprovedIdentity.objects.filter(device_model=cam_model))
    assert dict(ApprovedIdentity.objects.values_list("pk", "claim_code_hash")) == before
    issue.refresh_from_db()
    assert (issue.csv_downloaded_at, issue.labels_downloaded_at, issue.status) == (None, None, "ready")
    assert ClaimCodeIssue.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_generated_codes_are_never_stored_in_clear(client, shared_media_root):
    cam_model = DeviceModelFactory(
        vendor__slug="acme", slug="cam-1", claiming_method=shipped_method("serial-claim-code")
    )
    issue = import_generated(cam_model, count=5)
    with code_file_path(issue.code).open("rb") as source:
        codes = [code for _line, _values, code in read_code_file(source)]
    dump = subprocess.run(
        ["pg_dump", "--data-only", database_url_for_subprocess()], capture_output=True, check=True
    ).stdout
    assert b"CAM1-0001" in dump  # the dump is of this test's data
    stored = code_file_path(issue.code).read_bytes()
    for code in codes:
        for written in (code, format_claim_code(code)):
            assert written.encode() not in dump
            assert written.encode() not in stored


def test_a_code_file_reads_only_with_the_key_it_was_written_with(cam_model, settings):
    issue = import_generated(cam_model, count=2)
    settings.SECRET_KEY = "another-secret-key-" + "x" * 40
    with code_file_path(issue.code).open("rb") as source, pytest.raises(CodeFileError):
        list(read_code_file(source))


def test_a_code_file_cut_short_does_not_read_as_a_shorter_list(cam_model):
    issue = import_generated(cam_model, count=5000)  # several chunks
    path = code_file_path(issue.code)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with path.open("rb") as source, pytest.raises(CodeFileError):
        list(read_code_file(source))


def test_models_without_claim_codes_are_marked_as_the_weaker_method(acme_admin_client, acme_model, cam_model):
    weaker = acme_admin_client.get(reverse("admin:vendors_devicemodel_change", args=[acme_model.pk]))
    assert b"Weaker method." in weaker.content
    assert b"anyone who reads the identifiers off a unit's sticker can claim it" in weaker.content
    stronger = acme_admin_client.get(reverse("admin:vendors_devicemodel_change", args=[cam_model.pk]))
    assert b"Weaker method." not in stronger.content


def test_whether_a_method_requires_claim_codes_is_fixed_once_units_exist(acme_admin_client, acme_model):
    from vendors.models import ClaimingMethod

    method = ClaimingMethod.objects.create(name="Acme serial only", slug="acme-serial", vendor=acme_model.vendor)
    method.fields.create(position=1, key="serial_number", label="Serial number", normalization="text")
    url = reverse("admin:vendors_claimingmethod_change", args=[method.pk])
    assert b'name="requires_claim_code"' in acme_admin_client.get(url).content
    ApprovedIdentityFactory(device_model=DeviceModelFactory(vendor=acme_model.vendor, claiming_method=method))
    page = acme_admin_client.get(url)
    assert b'name="requires_claim_code"' not in page.content
    assert b"and whether it requires a claim code (units hold one or not)" in page.content


def test_the_bulk_generator_makes_valid_codes_with_every_digit_random():
    generate = claim_code_generator()
    codes = [generate() for _ in range(20_000)]
    assert all(len(code) == 11 and code[-1] == verhoeff_check_digit(code[:-1]) for code in codes)
    for position in range(10):  # each random digit takes all ten values about equally often
        counts = [sum(code[position] == str(digit) for code in codes) for digit in range(10)]
        assert min(counts) > 1700
    assert len(set(codes)) > 19_990


@pytest.mark.worker
def test_codes_a_worker_generates_for_an_upload_are_downloaded_from_the_web(
    shared_media_root, celery_worker_process, client
):
    cam_model = DeviceModelFactory(
        vendor__slug="acme", slug="cam-1", claiming_method=shipped_method("serial-claim-code")
    )
    client.force_login(VendorStaffFactory(vendor=cam_model.vendor).user)
    upload = SimpleUploadedFile("cams.csv", b"serial_number\n" + b"".join(b"CAM1-%04d\n" % n for n in range(200)))
    client.post(reverse("admin:vendors_devicemodel_upload", args=[cam_model.pk]), {"file": upload})
    job = ImportJob.objects.get()
    wait_for(lambda: ImportJob.objects.get(pk=job.pk).status == "validated", timeout=60)
    assert not ClaimCodeIssue.objects.get(import_job=job).csv_downloaded_at
    client.post(reverse("admin:vendors_importjob_decide", args=[job.pk]), {"decision": "import"})
    wait_for(lambda: ClaimCodeIssue.objects.get(import_job=job).status == "ready", timeout=60)
    issue = ClaimCodeIssue.objects.get(import_job=job)
    rows = read_csv(download(client, issue, "csv"))
    assert len(rows) == 200
    unit = ApprovedIdentity.objects.get(identifier_1=rows[0]["serial_number"])
    assert claim_code_matches(rows[0]["claim_code"], unit.claim_code_hash)


def test_an_issue_too_large_for_a_label_sheet_offers_the_csv_alone(acme_admin_client, cam_model, monkeypatch):
    monkeypatch.setattr("vendors.code_issues.LABEL_SHEET_MAX_UNITS", UNITS - 1)
    issue = import_generated(cam_model)
    page = acme_admin_client.get(reverse("admin:vendors_claimcodeissue_change", args=[issue.pk]))
    assert f"No label sheet for more than {UNITS - 1} units" in page.text
    assert download(acme_admin_client, issue, "labels").status_code == 302
    assert len(read_csv(download(acme_admin_client, issue, "csv"))) == UNITS
    issue.refresh_from_db()
    assert issue.status == "destroyed"


def test_label_links_in_downloads_use_the_portal_origin_when_it_is_set(acme_admin_client, cam_model, settings):
    settings.PORTAL_ORIGIN = "https://portal.example"
    issue = import_generated(cam_model, count=2)
    rows = read_csv(download(acme_admin_client, issue, "csv"))
    assert all(row["label_url"].startswith("https://portal.example/claim/label/") for row in rows)


def test_label_links_in_downloads_use_the_address_staff_reached_without_a_portal_origin(
    acme_admin_client, cam_model, settings
):
    settings.PORTAL_ORIGIN = ""
    issue = import_generated(cam_model, count=2)
    rows = read_csv(download(acme_admin_client, issue, "csv"))
    assert all(row["label_url"].startswith("http://testserver/claim/label/") for row in rows)


def test_the_command_line_without_a_portal_origin_or_a_host_name_says_so_instead_of_printing_a_local_link(
    cam_model, tmp_path, settings
):
    from django.core.management import call_command

    settings.PORTAL_ORIGIN = ""
    settings.ALLOWED_HOSTS = [".example.com"]
    path = tmp_path / "cams.csv"
    path.write_text("serial_number\nCAM1-0001\n")
    out = io.StringIO()
    call_command("import_identities", "--vendor", "acme", "--model", "cam-1", str(path), stdout=out)
    issue = ClaimCodeIssue.objects.get()
    printed = out.getvalue()
    assert "127.0.0.1" not in printed
    assert f"/admin/vendors/claimcodeissue/{issue.pk}/change/" in printed
    assert "DJANGO_PORTAL_ORIGIN" in printed


def test_an_expired_issue_is_not_downloaded_and_its_codes_are_destroyed(acme_admin_client, cam_model):
    issue = import_generated(cam_model, count=2)
    ClaimCodeIssue.objects.filter(pk=issue.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    response = download(acme_admin_client, issue, "csv")
    assert response.status_code == 302
    issue.refresh_from_db()
    assert (issue.status, issue.csv_downloaded_at) == ("destroyed", None)
    assert not code_file_path(issue.code).exists()


@pytest.mark.parametrize("kind", ["csv", "labels"])
def test_a_code_file_that_cannot_be_decrypted_answers_a_clear_message_and_keeps_the_download(
    acme_admin_client, cam_model, kind, monkeypatch
):
    monkeypatch.setattr("vendors.code_issues.LABEL_SHEET_MAX_UNITS", 5000)
    issue = import_generated(cam_model, count=5000)  # several chunks: the damage is past the first
    path = code_file_path(issue.code)
    data = bytearray(path.read_bytes())
    data[-10] ^= 1
    path.write_bytes(bytes(data))
    response = download(acme_admin_client, issue, kind)
    assert response.status_code == 302
    message = str(list(response.wsgi_request._messages)[0])
    assert "cannot be decrypted" in message
    assert "Re-issue" in message
    issue.refresh_from_db()
    assert (issue.status, issue.csv_downloaded_at, issue.labels_downloaded_at) == ("ready", None, None)


def test_the_reissue_action_warns_that_the_units_firmware_needs_the_new_code(acme_admin_client, cam_model):
    import_generated(cam_model, count=1)
    page = acme_admin_client.get(reverse("admin:vendors_approvedidentity_changelist"))
    assert "the units&#x27; firmware must get the new code too" in page.text
    response = reissue(acme_admin_client, ApprovedIdentity.objects.all())
    message = str(list(response.wsgi_request._messages)[0])
    assert "the units' firmware must get the new code too" in message


def test_reissues_and_downloads_are_in_the_vendor_audit_log(acme_admin_client, acme_staff, cam_model):
    from vendors.models import VendorAuditEntry

    import_generated(cam_model, count=2)
    reissue(acme_admin_client, ApprovedIdentity.objects.filter(identifier_1="CAM1-0001"))
    issue = ClaimCodeIssue.objects.get(reason="reissue")
    download(acme_admin_client, issue, "csv")
    download(acme_admin_client, issue, "labels")
    entries = list(
        VendorAuditEntry.objects.order_by("id").values_list("action", "identifiers", "actor", "device_model")
    )
    assert entries == [
        ("claim_code_reissued", "CAM1-0001", acme_staff.pk, cam_model.pk),
        ("claim_codes_downloaded", str(issue), acme_staff.pk, cam_model.pk),
        ("label_sheet_downloaded", str(issue), acme_staff.pk, cam_model.pk),
    ]
