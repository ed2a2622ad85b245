"""The API tokens page in real headless Chromium: an owner creates a token, sees it once, the token
works against the customer API, and once revoked on the page it gets 401."""

import pytest

from accounts.models import Role
from apitokens.models import ApiToken

from .factories import PASSWORD, MembershipFactory, SpaceFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_an_owner_creates_a_token_sees_it_once_uses_it_and_revokes_it(live_server, playwright_driver, page):
    owner = MembershipFactory(role=Role.OWNER, organization__name="Acme Facilities").user
    SpaceFactory(organization=owner.memberships.get().organization, name="Lobby")
    api = playwright_driver.request.new_context(base_url=live_server.url)

    page.goto(f"{live_server.url}/accounts/login/")
    page.get_by_label("E-mail address").fill(owner.email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("link", name="API tokens").click()
    page.get_by_label("Name").fill("Inventory sync")
    page.get_by_label("Role").select_option("viewer")
    page.get_by_role("button", name="Create token").click()
    shown = page.get_by_label("The new token")
    raw = shown.input_value()
    assert raw.startswith("ptk_")
    page.screenshot(path=page.artifacts / "1-token-shown-once.png", full_page=True)

    spaces = api.get("/api/v1/org/spaces", headers={"Authorization": f"Bearer {raw}"})
    assert spaces.status == 200
    assert [space["name"] for space in spaces.json()] == ["Lobby"]

    page.goto(page.url)  # the page again, by GET (a reload would resend the form)
    assert raw not in page.content(), "the token is shown once"
    row = page.get_by_role("row", name="Inventory sync")
    assert "Viewer" in row.inner_text()
    assert "Active" in row.inner_text()
    row.get_by_role("link", name="Revoke").click()
    page.get_by_role("button", name="Revoke the token").click()
    page.get_by_text("The token “Inventory sync” is revoked").wait_for()
    assert "Revoked" in page.get_by_role("row", name="Inventory sync").inner_text()
    page.screenshot(path=page.artifacts / "2-token-revoked.png", full_page=True)

    refused = api.get("/api/v1/org/spaces", headers={"Authorization": f"Bearer {raw}"})
    assert refused.status == 401
    assert refused.json()["error"]["code"] == "unauthorized"
    assert ApiToken.objects.get().revoked_at is not None
    api.dispose()
