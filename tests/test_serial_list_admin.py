"""The serial list in the admin: upload flow, search, filters, columns, actions and export."""

import csv
import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from portal.csv import neutralize_formula
from vendors.models import ApprovedIdentity, ClaimingMethod, ImportJob, VendorAuditEntry

from .factories import ApprovedIdentityFactory, ClaimedDeviceFactory, DeviceFactory, SpaceFactory

SERIAL_LIST = reverse("admin:vendors_approvedidentity_changelist")


@pytest.fixture(autouse=True)
def uploads_in_tmp(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path


def upload(client, device_model, content, capture_on_commit):
    """Upload through the admin; the validation task runs in-process once the upload commits."""
    url = reverse("admin:vendors_devicemodel_upload", args=[device_model.pk])
    with capture_on_commit(execute=True):
        response = client.post(url, {"file": SimpleUploadedFile("list.csv", content.encode())})
    return client.get(response.url)


def test_upload_shows_the_validation_report_then_imports_the_good_rows(
    acme_admin_client, acme_model, django_capture_on_commit_callbacks
):
    page = acme_admin_client.get(reverse("admin:vendors_devicemodel_upload", args=[acme_model.pk]))
    assert "<code>serial_number,mac_address</code>" in page.text

    response = upload(
        acme_admin_client,
        acme_model,
        "serial_number,mac_address\nSN-1,02:00:00:00:00:01\nSN-2,bad\nSN-3,02-00-00-00-00-03\n",
        django_capture_on_commit_callbacks,
    )
    assert response.status_code == 200
    assert "2</strong> good rows, <strong>1</strong> bad rows" in response.text
    assert "<td>3</td><td>mac_address: This is not a valid MAC address" in response.text
    assert not ApprovedIdentity.objects.exists()  # nothing written before the decision

    job = ImportJob.objects.get()
    with django_capture_on_commit_callbacks(execute=True):
        acme_admin_client.post(reverse("admin:vendors_importjob_decide", args=[job.pk]), {"decision": "import"})
    decided = acme_admin_client.get(reverse("admin:vendors_importjob_change", args=[job.pk]))
    assert "2 of 3 rows were added to the serial list; 1 bad rows were left out" in decided.text
    assert set(ApprovedIdentity.objects.values_list("identifier_1", flat=True)) == {"SN-1", "SN-3"}


def test_cancelling_after_the_report_imports_nothing(acme_admin_client, acme_model, django_capture_on_commit_callbacks):
    upload(
        acme_admin_client,
        acme_model,
        "serial_number,mac_address\nSN-1,02:00:00:00:00:01\n",
        django_capture_on_commit_callbacks,
    )
    job = ImportJob.objects.get()
    acme_admin_client.post(reverse("admin:vendors_importjob_decide", args=[job.pk]), {"decision": "cancel"})
    job.refresh_from_db()
    assert job.status == "cancelled"
    assert not ApprovedIdentity.objects.exists()


def test_a_refused_file_shows_why(acme_admin_client, acme_model, django_capture_on_commit_callbacks):
    response = upload(acme_admin_client, acme_model, "cloud_id\nABCDEFGHJKMNPQRT\n", django_capture_on_commit_callbacks)
    assert "The first line must name this model&#x27;s identifier fields: serial_number,mac_address" in response.text
    assert "Import the" not in response.text


def test_upload_without_a_file_keeps_the_form_with_an_error(acme_admin_client, acme_model):
    response = acme_admin_client.post(reverse("admin:vendors_devicemodel_upload", args=[acme_model.pk]), {})
    assert response.status_code == 200
    assert "This field is required." in response.text
    assert not ImportJob.objects.exists()


def test_job_status_fragment_polls_while_the_job_runs(acme_admin_client, acme_model):
    job = ImportJob.objects.create(device_model=acme_model, source_name="big.csv", status="validating", progress=42)
    fragment = acme_admin_client.get(reverse("admin:vendors_importjob_status", args=[job.pk]))
    assert 'hx-trigger="every 1s"' in fragment.text
    assert '<progress max="100" value="42"' in fragment.text
    job.status = "validated"
    job.save()
    fragment = acme_admin_client.get(reverse("admin:vendors_importjob_status", args=[job.pk]))
    assert "hx-trigger" not in fragment.text


@pytest.mark.parametrize("typed", ["aa-bb-cc-dd-ee-01", "AABB.CCDD.EE01", " aa:bb:cc:dd:ee:01 ", "sn-777"])
def test_search_finds_a_unit_by_any_identifier_typed_in_any_format(acme_admin_client, acme_model, typed):
    ApprovedIdentityFactory(device_model=acme_model, identifier_1="SN-777", identifier_2="AA:BB:CC:DD:EE:01")
    ApprovedIdentityFactory(device_model=acme_model, identifier_1="SN-778", identifier_2="AA:BB:CC:DD:EE:02")
    response = acme_admin_client.get(SERIAL_LIST, {"q": typed})
    assert [identity.identifier_1 for identity in response.context["cl"].result_list] == ["SN-777"]


def shown(client, **params):
    return {identity.identifier_1 for identity in client.get(SERIAL_LIST, params).context["cl"].result_list}


def test_device_status_filter_counts_units_without_a_device_row_as_unregistered(acme_admin_client, acme_model):
    never_seen = ApprovedIdentityFactory(device_model=acme_model)
    unregistered = DeviceFactory(identity__device_model=acme_model)
    registered = DeviceFactory(identity__device_model=acme_model, status="registered")
    claimed = ClaimedDeviceFactory(identity__device_model=acme_model)
    assert shown(acme_admin_client, device_status="unregistered") == {
        never_seen.identifier_1,
        unregistered.identity.identifier_1,
    }
    assert shown(acme_admin_client, device_status="registered") == {registered.identity.identifier_1}
    assert shown(acme_admin_client, device_status="claimed") == {claimed.identity.identifier_1}


def test_filters_by_model_and_by_approval_status(acme_admin_client, acme_model):
    other_model = type(acme_model).objects.create(
        vendor=acme_model.vendor, name="Acme Hub 3", slug="hub-3", claiming_method=acme_model.claiming_method
    )
    first = ApprovedIdentityFactory(device_model=acme_model)
    second = ApprovedIdentityFactory(device_model=other_model, status="revoked")
    assert shown(acme_admin_client, model=other_model.pk) == {second.identifier_1}
    assert shown(acme_admin_client, status__exact="approved") == {first.identifier_1}


def test_serial_list_shows_device_status_last_seen_and_claiming_organization(acme_admin_client, acme_model):
    space = SpaceFactory(organization__name="Initech")
    ClaimedDeviceFactory(identity__device_model=acme_model, space=space, organization=space.organization)
    response = acme_admin_client.get(SERIAL_LIST)
    assert "Initech" in response.text
    assert "Claimed" in response.text


def add_rows_to_every_list(device_model, staff):
    """One more row for each vendor staff list: unit, claimed device, import job, audit entry."""
    ApprovedIdentityFactory(device_model=device_model)
    device = ClaimedDeviceFactory(identity__device_model=device_model)
    ImportJob.objects.create(device_model=device_model, source_name="list.csv")
    VendorAuditEntry.objects.create(
        vendor=device_model.vendor,
        device_model=device_model,
        identifiers=str(device.identity),
        action="force_released",
        actor=staff,
    )


@pytest.mark.parametrize(
    "changelist",
    [
        "vendors_approvedidentity",
        "devices_device",
        "vendors_importjob",
        "vendors_vendorauditentry",
        "vendors_devicemodel",
    ],
)
def test_list_query_count_does_not_grow_with_rows(acme_admin_client, acme_staff, acme_model, changelist):
    url = reverse(f"admin:{changelist}_changelist")

    def count_queries():
        with CaptureQueriesContext(connection) as queries:
            assert acme_admin_client.get(url).status_code == 200
        return len(queries)

    add_rows_to_every_list(acme_model, acme_staff)
    few = count_queries()
    for _ in range(10):
        add_rows_to_every_list(acme_model, acme_staff)
    assert count_queries() == few


def test_revoke_and_reapprove_actions(acme_admin_client, acme_model):
    identity = ApprovedIdentityFactory(device_model=acme_model)
    acme_admin_client.post(SERIAL_LIST, {"action": "revoke", "_selected_action": [identity.pk]})
    identity.refresh_from_db()
    assert identity.status == "revoked"
    assert identity.revoked_at is not None
    acme_admin_client.post(SERIAL_LIST, {"action": "reapprove", "_selected_action": [identity.pk]})
    identity.refresh_from_db()
    assert (identity.status, identity.revoked_at) == ("approved", None)


def test_actions_cannot_touch_another_vendors_units(acme_admin_client, globex_model):
    theirs = ApprovedIdentityFactory(device_model=globex_model)
    acme_admin_client.post(SERIAL_LIST, {"action": "revoke", "_selected_action": [theirs.pk]})
    theirs.refresh_from_db()
    assert theirs.status == "approved"


def test_export_lists_units_with_statuses_and_neutralizes_formulas(acme_admin_client, acme_model):
    ApprovedIdentityFactory(device_model=acme_model, identifier_1="=HYPERLINK(1)", identifier_2="02:00:00:00:00:01")
    space = SpaceFactory(organization__name="@evil")
    ClaimedDeviceFactory(
        identity__device_model=acme_model, identity__identifier_1="SN-2", space=space, organization=space.organization
    )
    response = acme_admin_client.get(reverse("admin:vendors_devicemodel_export", args=[acme_model.pk]))
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    table = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert table[0] == ["serial_number", "mac_address", "approval", "device_status", "last_seen", "organization",
                        "claimed_at"]  # fmt: skip
    assert table[1][:4] == ["'=HYPERLINK(1)", "02:00:00:00:00:01", "approved", "unregistered"]
    assert table[2][0] == "SN-2"
    assert table[2][3:6] == ["claimed", "", "'@evil"]


@pytest.mark.parametrize(
    ("cell", "safe"),
    [("=1+1", "'=1+1"), ("+1", "'+1"), ("-1", "'-1"), ("@SUM(A1)", "'@SUM(A1)"), ("\t=1", "'\t=1"), ("SN-1", "SN-1")],
)
def test_formula_neutralization(cell, safe):
    assert neutralize_formula(cell) == safe


def identifier_formset(prefix_count, rows):
    data = {
        "fields-TOTAL_FORMS": str(len(rows)),
        "fields-INITIAL_FORMS": str(prefix_count),
        "fields-MIN_NUM_FORMS": "0",
        "fields-MAX_NUM_FORMS": "3",
    }
    for index, row in enumerate(rows):
        data |= {f"fields-{index}-{key}": value for key, value in row.items()}
    return data


IMEI = {
    "position": "1",
    "key": "imei",
    "label": "IMEI",
    "help_text": "",
    "normalization": "compact",
    "pattern": r"[0-9]{15}",
    "format_hint": "15 digits",
}


def test_staff_add_an_imei_claiming_method_for_their_vendor(acme_admin_client, acme_model):
    data = {"name": "IMEI", "slug": "imei"} | identifier_formset(0, [IMEI])
    response = acme_admin_client.post(reverse("admin:vendors_claimingmethod_add"), data)
    assert response.status_code == 302, response.context["errors"]
    method = ClaimingMethod.objects.get(slug="imei")
    assert method.vendor == acme_model.vendor
    assert method.fields.get().clean_value("35-209900-176148-1") == "352099001761481"


def test_a_method_with_an_invalid_regex_or_four_fields_is_refused(acme_admin_client):
    bad_regex = {"name": "Bad", "slug": "bad"} | identifier_formset(0, [IMEI | {"pattern": "[0-9"}])
    response = acme_admin_client.post(reverse("admin:vendors_claimingmethod_add"), bad_regex)
    assert "Not a valid regular expression" in response.text
    four = [IMEI | {"position": str(n), "key": f"k{n}"} for n in range(1, 5)]
    response = acme_admin_client.post(
        reverse("admin:vendors_claimingmethod_add"), {"name": "Four", "slug": "four"} | identifier_formset(0, four)
    )
    assert response.status_code == 200
    assert not ClaimingMethod.objects.filter(slug__in=["bad", "four"]).exists()


def test_a_method_in_use_keeps_its_field_keys_and_order(acme_admin_client, acme_model):
    method = ClaimingMethod.objects.create(name="IMEI", slug="imei", vendor=acme_model.vendor)
    field = method.fields.create(**{k: v for k, v in IMEI.items() if k != "position"}, position=1)
    acme_model.claiming_method = method
    acme_model.save()
    ApprovedIdentityFactory(device_model=acme_model, identifier_1="352099001761481", identifier_2=None)
    url = reverse("admin:vendors_claimingmethod_change", args=[method.pk])
    renamed = {"name": "IMEI", "slug": "imei"} | identifier_formset(1, [IMEI | {"id": field.pk, "key": "imei_1"}])
    assert acme_admin_client.post(url, renamed).status_code == 302  # the key is read-only: not saved
    relabelled = {"name": "IMEI", "slug": "imei"} | identifier_formset(1, [IMEI | {"id": field.pk, "label": "IMEI 1"}])
    assert acme_admin_client.post(url, relabelled).status_code == 302
    field.refresh_from_db()
    assert (field.key, field.label) == ("imei", "IMEI 1")


def test_staff_cannot_change_a_shipped_method(acme_admin_client):
    method = ClaimingMethod.objects.get(slug="serial-mac")
    url = reverse("admin:vendors_claimingmethod_change", args=[method.pk])
    assert acme_admin_client.get(url).status_code == 200  # may read it
    assert acme_admin_client.post(url, {"name": "Mine now", "slug": "serial-mac"}).status_code == 403


def test_search_does_not_reach_another_vendors_units(acme_admin_client, acme_model, globex_model):
    ApprovedIdentityFactory(device_model=globex_model, identifier_1="ABCDEFGHJKMNPQRT")
    assert shown(acme_admin_client, q="abcd-efgh-jkmn-pqrt") == set()


def test_device_list_search_finds_a_device_by_its_mac_in_any_format(acme_admin_client, acme_model):
    device = ClaimedDeviceFactory(identity__device_model=acme_model, identity__identifier_2="AA:BB:CC:DD:EE:07")
    ClaimedDeviceFactory(identity__device_model=acme_model)
    response = acme_admin_client.get(reverse("admin:devices_device_changelist"), {"q": "aabbccddee07"})
    assert list(response.context["cl"].result_list) == [device]
