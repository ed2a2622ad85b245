"""A release request in real headless Chromium, both ways: the requester asks in the claim wizard,
the holder sees the request on the device page and releases, the requester claims at once. A
screenshot of each step lands in test-artifacts/<test name>/."""

import re

import pytest
from django.core.cache import cache
from playwright.sync_api import expect

from accounts.models import Role
from devices.models import Device

from .factories import (
    PASSWORD,
    ApprovedIdentityFactory,
    ClaimedDeviceFactory,
    DeviceModelFactory,
    MembershipFactory,
    OrganizationFactory,
    SpaceFactory,
    VendorFactory,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CODE = "12345678902"


@pytest.fixture
def held_camera(transactional_db):
    """A camera (serial number and claim code) claimed by Globex; Initech holds it in fact."""
    cache.clear()
    acme = VendorFactory(name="Acme Devices", slug="acme")
    camera = DeviceModelFactory(vendor=acme, name="Acme Cam 1", slug="cam-1", claim_code=True)
    unit = ApprovedIdentityFactory(device_model=camera, identifier_1="AC1-260001", claim_code=CODE)
    holder = OrganizationFactory(name="Globex", vendors=[acme])
    holder_space = SpaceFactory(organization=holder, name="Globex lobby")
    MembershipFactory(organization=holder, role=Role.OWNER, user__email="gina@globex.example")
    device = ClaimedDeviceFactory(space=holder_space, identity=unit, name="Globex door camera")
    requester = OrganizationFactory(name="Initech", vendors=[acme])
    SpaceFactory(organization=requester, name="Auditorium")
    MembershipFactory(organization=requester, role=Role.OWNER, user__email="alice@initech.example")
    return device


def _sign_in(page, live_server, email):
    page.goto(f"{live_server.url}/accounts/login/")
    page.get_by_label("E-mail address").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()


def _shoot(page, name):
    page.screenshot(path=page.artifacts / f"{name}.png", full_page=True)


def test_a_requester_asks_in_the_wizard_the_holder_releases_and_the_requester_claims(
    browser, page, live_server, held_camera
):
    _sign_in(page, live_server, "alice@initech.example")
    page.get_by_role("link", name="Auditorium").click()
    page.get_by_role("link", name=re.compile(r"Claim Device$")).click()
    page.get_by_label("Acme Cam 1").check()
    page.get_by_role("button", name="Next").click()
    page.get_by_label("Serial number").fill("AC1-260001")
    page.get_by_label("Claim code").fill("1234-567-8902")
    page.get_by_role("button", name="Next").click()
    page.get_by_label("Device name").fill("Stage camera")
    page.get_by_role("button", name="Claim a device").click()
    expect(page.get_by_text("already claimed by another organization")).to_be_visible()
    _shoot(page, "01-refused")
    page.get_by_role("link", name="Ask the owner to release it").click()
    page.get_by_label("Your message to the owner").fill("We bought it from your reseller, invoice 4711.")
    _shoot(page, "02-ask")
    page.get_by_role("button", name="Ask the owner to release it").click()
    expect(page.get_by_text("Your request was sent to the owner")).to_be_visible()
    expect(page.get_by_text("Waiting for the owner")).to_be_visible()
    expect(page.get_by_text("Globex")).to_have_count(0)
    _shoot(page, "03-requests")

    holder = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        tab = holder.new_page()
        _sign_in(tab, live_server, "gina@globex.example")
        tab.goto(f"{live_server.url}/devices/{held_camera.code}/")
        requests = tab.locator("#release-requests")
        expect(requests.get_by_text("We bought it from your reseller, invoice 4711.")).to_be_visible()
        expect(tab.get_by_text("Initech")).to_have_count(0)
        tab.screenshot(path=page.artifacts / "04-holder-device-page.png", full_page=True)
        requests.get_by_role("link", name="Release…").click()
        expect(tab.get_by_text("only the organization that asked may claim it")).to_be_visible()
        tab.get_by_label("Type the device name to confirm").fill("Globex door camera")
        tab.get_by_role("button", name="Release and delete its history").click()
        expect(tab.get_by_text("was released")).to_be_visible()
    finally:
        holder.close()

    page.reload()
    page.get_by_role("link", name="Claim it now").click()
    expect(page.get_by_text("AC1-260001")).to_be_visible()
    _shoot(page, "05-claim-released")
    page.get_by_role("button", name="Next").click()
    page.get_by_label("Device name").fill("Stage camera")
    page.get_by_role("button", name="Claim a device").click()
    expect(page.get_by_text("“Stage camera” is claimed")).to_be_visible()
    _shoot(page, "06-claimed")
    device = Device.objects.get(pk=held_camera.pk)
    assert (device.organization.name, device.name) == ("Initech", "Stage camera")
