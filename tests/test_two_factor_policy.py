"""An organization's requirement of two-factor authentication, the admin's, and invitations to an
organization that requires it."""

import re

import pytest
from django.core import mail
from django.urls import reverse

from accounts.members import invite_member
from accounts.models import AuditEntry, Role

from .factories import PASSWORD, UserFactory, api_token, authenticator, authenticator_code

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_throttle")]


def sign_in_with_code(client, user, device):
    client.post(reverse("login"), {"username": user.email, "password": PASSWORD})
    assert client.post(reverse("two-factor-code"), {"code": authenticator_code(device)}).status_code == 302


def _require(organization):
    organization.two_factor_required = True
    organization.save(update_fields=["two_factor_required"])


def test_an_owner_requires_two_factor_authentication_and_the_audit_log_says_so(client, organization, owner):
    client.force_login(owner)
    client.post(reverse("two-factor-policy", args=[organization.code]), {"required": "on"})
    organization.refresh_from_db()
    assert organization.two_factor_required
    entry = AuditEntry.objects.get(organization=organization, action=AuditEntry.Action.TWO_FACTOR_REQUIRED)
    assert entry.actor == owner


def test_an_admin_cannot_change_the_requirement(client, organization, admin_member):
    client.force_login(admin_member)
    response = client.post(reverse("two-factor-policy", args=[organization.code]), {"required": "on"}, follow=True)
    assert "Only owners" in response.text
    organization.refresh_from_db()
    assert not organization.two_factor_required


def test_a_member_without_a_factor_is_sent_to_set_one_up_and_then_reaches_the_organization(
    client, organization, viewer
):
    _require(organization)
    client.force_login(viewer)
    overview = reverse("organization-overview", args=[organization.code])
    for url in (overview, reverse("members", args=[organization.code])):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("two-factor-setup"))
    setup = client.get(client.get(overview)["Location"])
    assert "requires two-factor authentication" in setup.text
    device = viewer.totpdevice_set.get()
    client.post(reverse("two-factor-setup"), {"code": authenticator_code(device), "next": overview})
    assert client.get(overview).status_code == 200


def test_a_member_with_a_factor_in_a_session_that_did_not_use_it_is_asked_for_a_code(client, organization, viewer):
    _require(organization)
    device = authenticator(viewer)
    client.force_login(viewer)  # as a session signed in before the factor was set up
    overview = reverse("organization-overview", args=[organization.code])
    response = client.get(overview)
    assert response["Location"].startswith(reverse("two-factor-code"))
    client.post(reverse("two-factor-code"), {"code": authenticator_code(device)})
    assert client.get(overview).status_code == 200


def test_a_member_signed_in_with_a_code_reaches_the_organization(client, organization, viewer):
    _require(organization)
    sign_in_with_code(client, viewer, authenticator(viewer))
    assert client.get(reverse("organization-overview", args=[organization.code])).status_code == 200


def test_other_organizations_are_not_affected(client, organization, outsider):
    _require(organization)
    client.force_login(outsider)
    other = outsider.memberships.get().organization
    assert client.get(reverse("organization-overview", args=[other.code])).status_code == 200


def test_api_tokens_are_not_people_and_are_unaffected(client, organization, owner):
    _require(organization)
    _, raw = api_token(organization, Role.VIEWER, actor=owner)
    assert client.get("/api/v1/org/spaces", HTTP_AUTHORIZATION=f"Bearer {raw}").status_code == 200


def test_the_members_page_shows_who_has_a_second_factor(client, organization, owner, viewer):
    sign_in_with_code(client, owner, authenticator(owner))
    page = client.get(reverse("members", args=[organization.code]))
    rows = {member.user: member.has_second_factor for member in page.context["members"]}
    assert rows[owner] is True
    assert rows[viewer] is False


def test_an_invitation_says_the_organization_requires_it_and_joining_leads_to_the_setup(
    client, organization, owner, django_capture_on_commit_callbacks
):
    _require(organization)
    with django_capture_on_commit_callbacks(execute=True):
        invitation = invite_member(
            organization, email="new@example.test", role=Role.VIEWER, actor=owner, link_origin="http://testserver"
        )
    assert "requires two-factor authentication" in mail.outbox[-1].body
    link = re.search(r"https?://\S+/accounts/invitations/\S+/", mail.outbox[-1].body).group(0)
    assert "requires two-factor authentication" in client.get(link).text
    joined = client.post(link, {"full_name": "New Person", "password1": "a-long-pass-7", "password2": "a-long-pass-7"})
    assert joined["Location"].startswith(reverse("two-factor-setup"))
    assert invitation.organization.memberships.filter(user__email="new@example.test").exists()


def test_with_the_admin_requirement_on_staff_without_a_factor_are_sent_to_set_one_up(client, settings):
    settings.ADMIN_TWO_FACTOR_REQUIRED = True
    staff = UserFactory(is_staff=True, is_superuser=True)
    client.force_login(staff)
    assert client.get(reverse("admin:index"))["Location"].startswith(reverse("two-factor-setup"))
    client.get(reverse("two-factor-setup"))
    device = staff.totpdevice_set.get()
    client.post(reverse("two-factor-setup"), {"code": authenticator_code(device)})
    assert client.get(reverse("admin:index")).status_code == 200


def test_without_the_admin_requirement_staff_use_the_admin_with_a_password(client, settings):
    settings.ADMIN_TWO_FACTOR_REQUIRED = False
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    assert client.get(reverse("admin:index")).status_code == 200


def test_the_admin_sign_in_sends_accounts_with_a_factor_to_the_portal_sign_in(client):
    staff = UserFactory(is_staff=True)
    authenticator(staff)
    response = client.post(reverse("admin:login"), {"username": staff.email, "password": PASSWORD})
    assert "sign in on the portal" in response.text
    assert "_auth_user_id" not in client.session
