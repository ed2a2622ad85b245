"""In real headless Chromium: typing into the dashboard's Search box narrows the list as one types
(htmx, debounced), and the query lands in the address bar so the view can be bookmarked."""

import re

import pytest
from django.core.cache import cache
from playwright.sync_api import expect

from .factories import PASSWORD, ApprovedIdentityFactory, ClaimedDeviceFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_typing_into_the_search_box_narrows_the_list(live_server, page, owner, space, device_model):
    cache.clear()
    identity = ApprovedIdentityFactory(device_model=device_model, identifier_2="02:00:0A:0B:0C:0D")
    ClaimedDeviceFactory(space=space, identity=identity, name="Lobby Hub")
    for name in ["Shelf camera", "Stockroom sensor", "Roof antenna"]:
        ClaimedDeviceFactory(space=space, identity__device_model=device_model, name=name)

    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("#id_username", owner.email)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.goto(f"{live_server.url}/spaces/{space.code}/")
    rows = page.locator("#device-results tbody tr")
    expect(rows).to_have_count(4)

    search = page.get_by_label("Search", exact=True)
    search.press_sequentially("st", delay=50)
    expect(rows).to_have_count(1)
    expect(rows).to_contain_text("Stockroom sensor")
    expect(page.locator("#device-count")).to_have_text("1 device matches")
    page.screenshot(path=page.artifacts / "1-name.png", full_page=True)

    search.fill("")
    search.press_sequentially("0200.0a0b.0c0d", delay=20)
    expect(rows).to_have_count(1)
    expect(rows).to_contain_text("Lobby Hub")
    expect(page).to_have_url(re.compile(r"\?q=0200\.0a0b\.0c0d(&|$)"))
    page.screenshot(path=page.artifacts / "2-mac.png", full_page=True)

    page.reload()
    expect(rows).to_have_count(1)
    expect(search).to_have_value("0200.0a0b.0c0d")
