"""Claiming a device in real headless Chromium, from sign-in to the dashboard; a screenshot of each step
lands in test-artifacts/<test name>/."""

import re

import pytest
from django.core.cache import cache
from playwright.sync_api import expect

from accounts.models import Role
from devices.models import Device

from .factories import (
    PASSWORD,
    ApprovedIdentityFactory,
    DeviceModelFactory,
    MembershipFactory,
    OrganizationFactory,
    SpaceFactory,
    VendorFactory,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def shop(transactional_db):
    """An organization connected to two vendors (so the vendor step shows), its owner and a space."""
    cache.clear()
    acme = VendorFactory(name="Acme Devices", slug="acme", support_email="support@acme.example")
    hub = DeviceModelFactory(vendor=acme, name="Acme Hub 2")
    DeviceModelFactory(vendor=acme, name="Acme Hub 3")
    globex = VendorFactory(name="Globex", slug="globex")
    DeviceModelFactory(vendor=globex, name="Globex Display 55", cloud_id=True)
    organization = OrganizationFactory(name="Initech", vendors=[acme, globex])
    space = SpaceFactory(organization=organization, name="Auditorium")
    owner = MembershipFactory(organization=organization, role=Role.OWNER, user__email="alice@initech.example").user
    identity = ApprovedIdentityFactory(device_model=hub, identifier_1="AH2-260001", identifier_2="02:AC:E0:00:00:01")
    return {"owner": owner, "space": space, "identity": identity}


def _shoot(page, name):
    page.screenshot(path=page.artifacts / f"{name}.png", full_page=True)


def _walk_to_identifiers(page, live_server):
    page.goto(f"{live_server.url}/accounts/login/")
    page.get_by_label("E-mail address").fill("alice@initech.example")
    page.get_by_label("Password").fill(PASSWORD)
    _shoot(page, "01-sign-in")
    page.get_by_role("button", name="Sign in").click()

    expect(page.get_by_role("heading", name="Initech")).to_be_visible()
    _shoot(page, "02-organization-overview")
    page.get_by_role("link", name="Auditorium").click()

    expect(page.get_by_role("heading", name="Auditorium")).to_be_visible()
    _shoot(page, "03-space-dashboard")
    page.get_by_role("link", name=re.compile(r"Claim Device$")).click()

    expect(page).to_have_title("Step 1 of 4 · Vendor · Claim a device · Device Portal")
    page.get_by_label("Acme Devices").check()
    _shoot(page, "04-vendor")
    page.get_by_role("button", name="Next").click()

    expect(page).to_have_title("Step 2 of 4 · Model · Claim a device · Device Portal")
    page.get_by_label("Acme Hub 2").check()
    _shoot(page, "05-model")
    page.get_by_role("button", name="Next").click()

    expect(page).to_have_title("Step 3 of 4 · Identifiers · Claim a device · Device Portal")


def test_an_owner_claims_a_device_from_the_overview_to_the_dashboard(page, live_server, shop):
    _walk_to_identifiers(page, live_server)
    page.get_by_label("Serial number").fill("ah2-260001")
    page.get_by_label("MAC address").fill("02ac.e000.0001")
    _shoot(page, "06-identifiers")
    page.get_by_role("button", name="Next").click()

    expect(page).to_have_title("Step 4 of 4 · Name · Claim a device · Device Portal")
    page.get_by_label("Device name").fill("Screen on auditorium wall")
    _shoot(page, "07-name")
    page.get_by_role("button", name="Claim a device").click()

    expect(page.get_by_role("alert")).to_contain_text("“Screen on auditorium wall” is claimed and now in Auditorium")
    expect(page.get_by_role("link", name="Screen on auditorium wall", exact=True)).to_be_visible()
    _shoot(page, "08-dashboard-with-the-device")
    assert Device.objects.get(identity=shop["identity"]).space == shop["space"]


def test_a_serial_number_that_is_not_approved_shows_the_vendors_message_above_the_identifier_fields(
    page, live_server, shop
):
    _walk_to_identifiers(page, live_server)
    page.get_by_label("Serial number").fill("AH2-26O001")
    page.get_by_label("MAC address").fill("02:AC:E0:00:00:01")
    page.get_by_role("button", name="Next").click()
    page.get_by_label("Device name").fill("Screen on auditorium wall")
    page.get_by_role("button", name="Claim a device").click()

    expect(page).to_have_title("Step 3 of 4 · Identifiers · Claim a device · Device Portal")
    # Above the fields, not under one: it must not tell which of the values the portal knows.
    error = page.locator(".alert-danger")
    expect(error).to_contain_text(
        "You have attempted to add a Serial number and MAC address that is not approved for this device."
    )
    expect(error).to_contain_text("contact Acme Devices support (support@acme.example)")
    expect(error).to_contain_text("easy to confuse on a sticker: O/0")
    expect(page.get_by_label("Serial number")).to_have_value("AH2-26O001")
    _shoot(page, "06-not-approved")
    assert not Device.objects.filter(identity=shop["identity"]).exists()
