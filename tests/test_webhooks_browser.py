"""The Webhooks page in real headless Chromium: an owner adds an endpoint pointing at a local
receiver, sees its secret once, moves a device, sees the delivery succeed and resends it; a
screenshot of each step lands in test-artifacts/<test name>/."""

import hashlib
import hmac
import json

import pytest
from django.core.cache import cache
from playwright.sync_api import expect

from accounts.models import Role

from .factories import PASSWORD, ClaimedDeviceFactory, MembershipFactory, OrganizationFactory, SpaceFactory
from .webhook_receiver import Receiver

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def shop(transactional_db, settings):
    # The receiver listens on 127.0.0.1; deliveries run in-process after each commit (eager tasks).
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = True
    cache.clear()
    organization = OrganizationFactory(name="Initech")
    lobby = SpaceFactory(organization=organization, name="Lobby")
    SpaceFactory(organization=organization, name="Warehouse")
    MembershipFactory(organization=organization, role=Role.OWNER, user__email="alice@initech.example")
    return ClaimedDeviceFactory(space=lobby, name="Door camera")


def _shoot(page, name):
    page.screenshot(path=page.artifacts / f"{name}.png", full_page=True)


def test_an_owner_adds_a_webhook_sees_the_secret_once_and_resends_a_delivery(page, live_server, shop):
    with Receiver() as receiver:
        page.goto(f"{live_server.url}/accounts/login/")
        page.get_by_label("E-mail address").fill("alice@initech.example")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.get_by_role("link", name="Webhooks").click()

        expect(page.get_by_role("heading", name="Webhooks")).to_be_visible()
        for checkbox in page.locator("input[name=events]").all():
            expect(checkbox).to_be_checked()
        _shoot(page, "01-webhooks-page")
        page.get_by_label("URL").fill(receiver.url())
        page.get_by_role("button", name="Add webhook").click()

        secret = page.locator("[data-secret]").inner_text()
        assert len(secret) >= 32
        _shoot(page, "02-secret-shown-once")
        page.goto(page.url)
        expect(page.locator("[data-secret]")).to_have_count(0)
        assert secret not in page.content()

        page.goto(f"{live_server.url}/devices/{shop.code}/")
        page.get_by_label("Move to space").select_option(label="Warehouse")
        page.get_by_role("button", name="Move").click()
        expect(page.get_by_text("Warehouse").first).to_be_visible()

        page.goto(f"{live_server.url}/o/{shop.organization.code}/webhooks/")
        row = page.locator("#deliveries tbody tr").first
        expect(row).to_contain_text("device.moved")
        expect(row.locator("[data-status]")).to_have_text("Delivered")
        expect(row).to_contain_text("HTTP 200")
        _shoot(page, "03-delivered")

        row.get_by_role("button", name="Resend").click()
        expect(page.locator("#deliveries tbody tr")).to_have_count(2)
        expect(page.locator("#deliveries [data-status]").first).to_have_text("Delivered")
        _shoot(page, "04-resent")

        first, second = receiver.requests
    assert first.body == second.body
    assert json.loads(first.body)["data"]["space"]["name"] == "Warehouse"
    signed = "sha256=" + hmac.new(secret.encode(), first.body, hashlib.sha256).hexdigest()
    assert first.headers["X-Portal-Signature"] == signed
