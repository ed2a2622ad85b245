"""Vendor staff in the admin see and change only their own vendor's data."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from vendors.models import ApprovedIdentity, ClaimingMethod, DeviceModel, ImportJob

from .factories import (
    ApprovedIdentityFactory,
    ClaimedDeviceFactory,
    DeviceModelFactory,
    UserFactory,
    VendorStaffFactory,
    shipped_method,
)


def admin_url(model, action, *args):
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{action}", args=args)


def test_staff_lists_only_their_vendors_models(acme_admin_client, acme_model, globex_model):
    response = acme_admin_client.get(admin_url(DeviceModel, "changelist"))
    assert response.status_code == 200
    assert acme_model.name in response.text
    assert globex_model.name not in response.text


def test_staff_serial_list_shows_only_their_units(acme_admin_client, acme_model, globex_model):
    mine = ApprovedIdentityFactory(device_model=acme_model)
    theirs = ApprovedIdentityFactory(device_model=globex_model)
    response = acme_admin_client.get(admin_url(ApprovedIdentity, "changelist"))
    assert mine.identifier_1 in response.text
    assert theirs.identifier_1 not in response.text


@pytest.mark.parametrize("action", ["change", "delete", "history"])
def test_another_vendors_model_url_gives_404(acme_admin_client, globex_model, action):
    response = acme_admin_client.get(admin_url(DeviceModel, action, globex_model.pk))
    assert response.status_code == 404
    assert globex_model.name not in response.text


def test_another_vendors_unit_and_device_urls_give_404(acme_admin_client, globex_model):
    device = ClaimedDeviceFactory(identity__device_model=globex_model)
    assert acme_admin_client.get(admin_url(ApprovedIdentity, "change", device.identity.pk)).status_code == 404
    assert acme_admin_client.get(admin_url(device, "change", device.pk)).status_code == 404
    assert acme_admin_client.get(admin_url(device, "force_release", device.pk)).status_code == 404


def test_staff_cannot_change_another_vendors_model_by_post(acme_admin_client, globex_model):
    response = acme_admin_client.post(admin_url(DeviceModel, "change", globex_model.pk), {"name": "Taken over"})
    assert response.status_code == 404
    globex_model.refresh_from_db()
    assert globex_model.name != "Taken over"


def test_staff_cannot_import_into_another_vendors_model(acme_admin_client, globex_model):
    upload = SimpleUploadedFile("list.csv", b"cloud_id\nABCDEFGHJKMNPQRT\n")
    response = acme_admin_client.post(admin_url(DeviceModel, "upload", globex_model.pk), {"file": upload})
    assert response.status_code == 404
    assert not ImportJob.objects.exists()
    assert acme_admin_client.get(admin_url(DeviceModel, "export", globex_model.pk)).status_code == 404


def test_staff_cannot_open_another_vendors_import_job(acme_admin_client, globex_model):
    job = ImportJob.objects.create(device_model=globex_model, source_name="globex.csv")
    assert acme_admin_client.get(admin_url(ImportJob, "change", job.pk)).status_code == 404
    assert acme_admin_client.get(admin_url(ImportJob, "status", job.pk)).status_code == 404
    assert acme_admin_client.post(admin_url(ImportJob, "decide", job.pk), {"decision": "import"}).status_code == 404


def test_model_form_offers_only_the_staffs_vendor_and_usable_methods(acme_admin_client, acme_model, globex_model):
    globex_method = ClaimingMethod.objects.create(name="Globex IMEI", slug="globex-imei", vendor=globex_model.vendor)
    form = acme_admin_client.get(admin_url(DeviceModel, "add")).context["adminform"].form
    assert list(form.fields["vendor"].queryset) == [acme_model.vendor]
    methods = set(form.fields["claiming_method"].queryset)
    assert shipped_method("serial-mac") in methods
    assert globex_method not in methods


def test_staff_cannot_pick_another_vendor_when_adding_a_model(acme_admin_client, acme_model, globex_model):
    response = acme_admin_client.post(
        admin_url(DeviceModel, "add"),
        {
            "vendor": globex_model.vendor.pk,
            "name": "Smuggled",
            "slug": "smuggled",
            "claiming_method": shipped_method("cloud-id").pk,
            "heartbeat_interval": 60,
            "attestation": "none",
        },
    )
    assert response.status_code == 200
    assert "vendor" in response.context["adminform"].form.errors
    assert not DeviceModel.objects.filter(slug="smuggled").exists()


def test_staff_do_not_see_customer_administration(acme_admin_client):
    index = acme_admin_client.get(reverse("admin:index"))
    assert "Organizations" not in index.text
    assert acme_admin_client.get(reverse("admin:accounts_organization_changelist")).status_code == 403


def test_staff_user_without_a_vendor_sees_no_vendor_data(client, acme_model):
    ApprovedIdentityFactory(device_model=acme_model)
    client.force_login(UserFactory(is_staff=True))
    assert client.get(admin_url(ApprovedIdentity, "changelist")).status_code == 403


def test_superuser_sees_every_vendor(client, acme_model, globex_model):
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    response = client.get(admin_url(DeviceModel, "changelist"))
    assert acme_model.name in response.text
    assert globex_model.name in response.text


def test_staff_of_two_vendors_each_see_their_own(client, acme_model):
    other = DeviceModelFactory()
    staff = VendorStaffFactory(vendor=other.vendor).user
    client.force_login(staff)
    response = client.get(admin_url(DeviceModel, "changelist"))
    assert other.name in response.text
    assert acme_model.name not in response.text
