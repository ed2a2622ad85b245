"""The invitation flow in real headless Chromium: an owner invites, the invitee opens the link
from the e-mail, creates an account and lands in the organization with the invited role."""

import re

import pytest
from django.core import mail

from accounts.models import Membership, Role

from .factories import PASSWORD, MembershipFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_an_invitee_follows_the_emailed_link_and_lands_in_the_organization_with_the_role(
    live_server, browser, page, settings
):
    settings.PORTAL_ORIGIN = ""  # the link leads to the address the inviter reached
    owner = MembershipFactory(role=Role.OWNER, organization__name="Acme Facilities").user
    organization = owner.memberships.get().organization

    page.goto(f"{live_server.url}/accounts/login/")
    page.get_by_label("E-mail address").fill(owner.email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("link", name="Members").click()
    page.locator("#id_email").fill("new.colleague@example.test")
    page.locator("#id_role").select_option("operator")
    page.get_by_role("button", name="Send invitation").click()
    page.get_by_text("Invitation sent to new.colleague@example.test").wait_for()
    page.screenshot(path=page.artifacts / "1-invitation-sent.png", full_page=True)

    assert mail.outbox[-1].to == ["new.colleague@example.test"]
    link = re.search(r"http://\S+/accounts/invitations/\S+/", mail.outbox[-1].body).group(0)
    assert link.startswith(live_server.url)

    invitee = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        tab = invitee.new_page()
        tab.goto(link)
        tab.get_by_text("You are invited as operator").wait_for()
        tab.locator("#id_full_name").fill("New Colleague")
        tab.locator("#id_password1").fill("a-long-pass-phrase")
        tab.locator("#id_password2").fill("a-long-pass-phrase")
        tab.screenshot(path=page.artifacts / "2-accept-form.png", full_page=True)
        tab.get_by_role("button", name="Create account and join").click()
        tab.get_by_text("Welcome to Acme Facilities: you are operator.").wait_for()
        assert tab.url == f"{live_server.url}/o/{organization.code}/"
        assert "you are operator" in tab.locator("main").inner_text()
        tab.screenshot(path=page.artifacts / "3-landed-in-organization.png", full_page=True)
    finally:
        invitee.close()

    membership = Membership.objects.get(user__email="new.colleague@example.test")
    assert (membership.organization, membership.role) == (organization, Role.OPERATOR)
