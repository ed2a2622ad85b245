"""In real Chromium: claim devices from a file, from the dashboard's link to the devices on it."""

import re

import pytest
from django.core.cache import cache
from playwright.sync_api import expect

from .factories import PASSWORD, ApprovedIdentityFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_file_is_checked_reported_and_claimed_and_its_devices_appear_on_the_dashboard(
    live_server, page, owner, space, device_model, tmp_path
):
    cache.clear()
    units = [ApprovedIdentityFactory(device_model=device_model) for _ in range(2)]
    csv_file = tmp_path / "delivery.csv"
    csv_file.write_text(
        "serial_number,mac_address,name\n"
        f"{units[0].identifier_1},{units[0].identifier_2},Lobby screen\n"
        f"{units[1].identifier_1},{units[1].identifier_2},Hall screen\n"
        "SN-NOT-ON-THE-LIST,02:00:00:00:00:99,Stray\n",
        encoding="utf-8-sig",
    )
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("#id_username", owner.email)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.goto(f"{live_server.url}/spaces/{space.code}/")
    expect(page.get_by_role("link", name=re.compile(r"Claim Device$"))).to_be_visible()
    page.get_by_role("link", name="Claim devices from a file").click()

    page.get_by_label("Model").select_option(label=f"{device_model.vendor.name} · {device_model.name}")
    page.get_by_label("CSV file").set_input_files(str(csv_file))
    page.get_by_role("button", name="Check the file").click()
    report = page.locator("[data-claim-report]")
    expect(report).to_contain_text("1 row cannot be claimed")
    # The failed row comes first, in the claim's own wording.
    expect(report.locator("tbody tr").first).to_contain_text("that is not approved for this device")
    page.screenshot(path=page.artifacts / "1-report.png", full_page=True)

    page.get_by_role("button", name="Claim 2 devices").click()
    expect(page.get_by_text("2 devices are claimed and now in")).to_be_visible()
    expect(page.get_by_role("link", name="Lobby screen")).to_be_visible()
    expect(page.get_by_role("link", name="Hall screen")).to_be_visible()
    page.screenshot(path=page.artifacts / "2-dashboard.png", full_page=True)
