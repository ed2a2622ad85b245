"""Vendor staff learn that a unit is claimed, when, and by which organization, and nothing about
the customer's people: not on any admin page they can open, not through a filter, a lookup or an
export. Superusers still see everything."""

import pytest
from django.urls import reverse

from accounts.models import Role
from devices.models import DeviceEvent

from .factories import ClaimedDeviceFactory, MembershipFactory, SpaceFactory, UserFactory

pytestmark = pytest.mark.django_db

ALICE = {"full_name": "Alice Claimant", "email": "alice@initech.example"}


@pytest.fixture
def alice():
    return UserFactory(**ALICE)


@pytest.fixture
def claimed_by_alice(acme_model, alice):
    """An Acme unit that Alice of Initech claimed, with a history naming her."""
    space = SpaceFactory(organization__name="Initech", name="Auditorium")
    MembershipFactory(organization=space.organization, user=alice, role=Role.OWNER)
    device = ClaimedDeviceFactory(identity__device_model=acme_model, space=space, claimed_by=alice, name="Screen")
    DeviceEvent.objects.create(device=device, kind=DeviceEvent.Kind.CLAIMED, actor=alice)
    return device


def test_vendor_staff_see_the_claiming_organization_and_time_but_not_who_claimed(acme_admin_client, claimed_by_alice):
    device = claimed_by_alice
    page = acme_admin_client.get(reverse("admin:devices_device_change", args=[device.pk]))
    assert page.status_code == 200
    assert "Initech" in page.text
    assert "Claimed at" in page.text
    for value in ALICE.values():
        assert value not in page.text
    for url, names_the_organization in [
        (reverse("admin:devices_device_changelist"), True),
        (reverse("admin:vendors_approvedidentity_changelist"), True),
        (reverse("admin:vendors_devicemodel_export", args=[device.device_model.pk]), True),
        (reverse("admin:vendors_approvedidentity_change", args=[device.identity.pk]), False),
        (reverse("admin:devices_device_history", args=[device.pk]), False),
    ]:
        response = acme_admin_client.get(url)
        content = b"".join(response.streaming_content) if response.streaming else response.content
        assert response.status_code == 200, url
        assert b"Initech" in content or not names_the_organization, url
        for value in ALICE.values():
            assert value.encode() not in content, url


def test_a_superuser_sees_who_claimed_a_device(client, claimed_by_alice):
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    page = client.get(reverse("admin:devices_device_change", args=[claimed_by_alice.pk]))
    assert ALICE["full_name"] in page.text


@pytest.mark.parametrize(
    "query",
    ["claimed_by={alice}", "claimed_by__exact={alice}", "claimed_by__id__exact={alice}", "claimed_by__isnull=False"],
)
def test_vendor_staff_cannot_find_devices_by_the_customer_user(acme_admin_client, claimed_by_alice, alice, query):
    url = reverse("admin:devices_device_changelist") + "?" + query.format(alice=alice.pk)
    response = acme_admin_client.get(url)
    assert response.status_code == 400
    assert claimed_by_alice.identity.identifier_1 not in response.text


@pytest.mark.parametrize(
    "url",
    [
        "/admin/devices/deviceevent/",
        "/admin/devices/deviceevent/{event}/change/",
        "/admin/accounts/user/?_to_field=id&_popup=1",
        "/admin/accounts/user/{alice}/change/",
        "/admin/accounts/auditentry/",
        "/admin/accounts/invitation/",
        "/admin/accounts/organization/",
        "/admin/vendors/vendorstaff/",
        "/admin/autocomplete/?app_label=vendors&model_name=vendorstaff&field_name=user&term=alice",
        "/admin/autocomplete/?app_label=accounts&model_name=membership&field_name=user&term=alice",
        "/admin/devices/device/?q=alice",
        "/admin/devices/device/?claimed_by__email__startswith=alice",
        "/admin/vendors/approvedidentity/?device__claimed_by__email=alice@initech.example",
        "/admin/vendors/approvedidentity/?q=alice",
        "/admin/vendors/vendorauditentry/?q=alice",
    ],
)
def test_no_admin_page_lookup_or_search_names_the_customers_people(acme_admin_client, claimed_by_alice, alice, url):
    event = DeviceEvent.objects.get(device=claimed_by_alice)
    response = acme_admin_client.get(url.format(event=event.pk, alice=alice.pk))
    assert response.status_code in (200, 400, 403, 404)
    for value in ALICE.values():
        assert value not in response.text
    if response.status_code == 200:
        assert claimed_by_alice.identity.identifier_1 not in response.text  # nothing is found by her
