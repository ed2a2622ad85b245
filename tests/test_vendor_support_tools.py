"""Vendor support in the admin: force release with a reason, the vendor audit log, re-activation."""

from django.urls import reverse

from devices.actions import release_device
from devices.models import Device, DeviceEvent
from vendors.models import VendorAuditEntry

from .factories import ClaimedDeviceFactory, DeviceFactory, SpaceFactory


def force_release_url(device):
    return reverse("admin:devices_device_force_release", args=[device.pk])


def test_force_release_requires_a_reason(acme_admin_client, acme_model):
    device = ClaimedDeviceFactory(identity__device_model=acme_model)
    response = acme_admin_client.post(force_release_url(device), {"reason": "   "})
    assert response.status_code == 200
    assert "This field is required." in response.text
    device.refresh_from_db()
    assert device.status == Device.Status.CLAIMED
    assert not VendorAuditEntry.objects.exists()


def test_force_release_releases_like_the_customer_and_logs_the_reason(acme_admin_client, acme_staff, acme_model):
    space = SpaceFactory(organization__name="Initech")
    device = ClaimedDeviceFactory(identity__device_model=acme_model, space=space, organization=space.organization)
    DeviceEvent.objects.create(device=device, kind=DeviceEvent.Kind.RENAMED)
    response = acme_admin_client.post(force_release_url(device), {"reason": "Sold back; ticket 4711"})
    assert response.status_code == 302
    device.refresh_from_db()
    assert (device.status, device.organization, device.space) == (Device.Status.UNREGISTERED, None, None)
    assert not device.events.exists()
    entry = VendorAuditEntry.objects.get()
    assert (entry.vendor, entry.action, entry.actor, entry.reason) == (
        acme_model.vendor,
        VendorAuditEntry.Action.FORCE_RELEASED,
        acme_staff,
        "Sold back; ticket 4711",
    )
    assert entry.identifiers == str(device.identity)
    assert "Initech" not in str(VendorAuditEntry.objects.values().get())  # no customer data


def test_a_customers_release_is_logged_without_naming_the_customer(acme_model, owner, space):
    device = ClaimedDeviceFactory(identity__device_model=acme_model, space=space, organization=space.organization)
    release_device(device, actor=owner)
    entry = VendorAuditEntry.objects.get()
    assert (entry.action, entry.actor, entry.reason) == (VendorAuditEntry.Action.RELEASED_BY_CUSTOMER, None, "")


def test_vendor_staff_read_their_own_audit_log_only(acme_admin_client, acme_model, globex_model):
    VendorAuditEntry.objects.create(
        vendor=acme_model.vendor, device_model=acme_model, identifiers="SN-ACME", action="force_released"
    )
    VendorAuditEntry.objects.create(
        vendor=globex_model.vendor, device_model=globex_model, identifiers="GLOBEXUNIT", action="force_released"
    )
    response = acme_admin_client.get(reverse("admin:vendors_vendorauditentry_changelist"))
    assert "SN-ACME" in response.text
    assert "GLOBEXUNIT" not in response.text


def test_force_release_of_an_unclaimed_device_changes_nothing(acme_admin_client, acme_model):
    device = DeviceFactory(identity__device_model=acme_model)
    response = acme_admin_client.post(force_release_url(device), {"reason": "Why not"}, follow=True)
    assert "This device is not claimed" in response.text
    assert not VendorAuditEntry.objects.exists()


def test_allow_reactivation_opens_the_window(acme_admin_client, acme_model):
    device = DeviceFactory(identity__device_model=acme_model, status=Device.Status.REGISTERED)
    response = acme_admin_client.post(reverse("admin:devices_device_allow_reactivation", args=[device.pk]))
    assert response.status_code == 302
    device.refresh_from_db()
    assert device.reactivation_allowed_until is not None


def test_vendor_staff_leave_re_activating_a_claimed_device_to_its_owner(acme_admin_client, acme_model):
    device = ClaimedDeviceFactory(identity__device_model=acme_model)
    url = reverse("admin:devices_device_allow_reactivation", args=[device.pk])
    response = acme_admin_client.post(url, follow=True)
    assert "its owner allows re-activation from the portal" in response.text
    device.refresh_from_db()
    assert device.reactivation_allowed_until is None


def test_device_page_is_read_only_for_vendor_staff_with_the_support_tools(acme_admin_client, acme_model):
    claimed = ClaimedDeviceFactory(identity__device_model=acme_model)
    page = acme_admin_client.get(reverse("admin:devices_device_change", args=[claimed.pk]))
    assert page.status_code == 200
    assert "Force release" in page.text
    assert "Allow re-activation" not in page.text
    registered = DeviceFactory(identity__device_model=acme_model, status=Device.Status.REGISTERED)
    page = acme_admin_client.get(reverse("admin:devices_device_change", args=[registered.pk]))
    assert "Allow re-activation" in page.text
    assert "Force release" not in page.text
    assert acme_admin_client.post(reverse("admin:devices_device_change", args=[claimed.pk]), {}).status_code == 403


def test_another_vendors_device_cannot_be_released_or_reactivated(acme_admin_client, globex_model):
    device = ClaimedDeviceFactory(identity__device_model=globex_model)
    assert acme_admin_client.post(force_release_url(device), {"reason": "x"}).status_code == 404
    url = reverse("admin:devices_device_allow_reactivation", args=[device.pk])
    assert acme_admin_client.post(url).status_code == 404
    device.refresh_from_db()
    assert device.status == Device.Status.CLAIMED
    assert device.reactivation_allowed_until is None
