"""In real Chromium: send a command on the device page and see it succeed once the simulator,
talking to the live server over HTTP with its derived key, has run it."""

import re

import pytest
from django.core.cache import cache
from playwright.sync_api import expect

from devices.claims import claim_device
from devices.simulator import HttpClient, SimulatedDevice

from .factories import PASSWORD, ApprovedIdentityFactory
from .test_device_activation import unit_of

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_command_sent_on_the_device_page_succeeds_after_the_simulator_runs_it(live_server, page, owner, space):
    cache.clear()
    identity = ApprovedIdentityFactory(device_model=space.organization.connected_vendors.get().device_models.get())
    client = HttpClient(live_server.url)
    simulated = SimulatedDevice(unit_of(identity))
    simulated.activate(client, wait=10)
    device = claim_device(
        space=space, device_model=identity.device_model, identifiers=identity.identifiers, name="Hub", actor=owner
    )
    simulated.heartbeat(client, {"temperature": 21.5})

    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("#id_username", owner.email)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.goto(f"{live_server.url}/devices/{device.code}/")
    expect(page.get_by_role("heading", name="Hub")).to_be_visible()
    page.get_by_role("button", name="Identify (blink the LED)").click()
    commands = page.locator("#command-list")
    expect(commands).to_contain_text("Queued")
    page.screenshot(path=page.artifacts / "1-queued.png", full_page=True)

    assert [c["name"] for c in simulated.run_commands(client)] == ["identify"]
    # The commands table polls (htmx) while a command is pending.
    expect(commands).to_contain_text("Succeeded", timeout=15_000)
    expect(commands).to_contain_text(re.compile("identify: done"))
    page.screenshot(path=page.artifacts / "2-succeeded.png", full_page=True)
