"""Members: invitations by signed e-mail link, accepting, role changes, removal and the last-owner rule."""

import re
import time
from datetime import timedelta
from smtplib import SMTPException

import pytest
from django.core import mail, signing
from django.core.mail.backends.base import BaseEmailBackend
from django.urls import reverse

from accounts.members import (
    InvalidInvitation,
    LastOwnerError,
    MembershipError,
    accept_invitation,
    change_role,
    deliver_invitation,
    invitation_from_token,
    invitation_token,
    invite_member,
    remove_member,
)
from accounts.models import AuditEntry, Invitation, Membership, Role, User

from .conftest import wait_for
from .factories import PASSWORD, MembershipFactory, OrganizationFactory, UserFactory

pytestmark = pytest.mark.django_db


def _invite(organization, actor, email="new.person@example.test", role=Role.OPERATOR):
    return invite_member(
        organization,
        email=email,
        role=role,
        actor=actor,
        link_origin="http://testserver",
    )


def _link_in_last_mail():
    return re.search(r"https?://\S+/accounts/invitations/\S+/", mail.outbox[-1].body).group(0)


def _assert_the_mail_invites(client, invitation):
    """The last mail goes to the invitee, and its link opens the invitation."""
    assert mail.outbox[-1].to == [invitation.email]
    page = client.get(_link_in_last_mail())
    assert page.status_code == 200
    assert f"You are invited as <strong>{invitation.get_role_display().lower()}</strong>" in page.text


def test_an_invitation_mails_a_signed_link_to_the_address_after_commit(
    client, organization, owner, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        invitation = _invite(organization, owner)
        assert mail.outbox == []
    assert _link_in_last_mail().endswith(f"/accounts/invitations/{invitation_token(invitation)}/")
    assert organization.name in mail.outbox[-1].subject
    _assert_the_mail_invites(client, invitation)


def test_a_redelivered_task_does_not_mail_the_link_twice(client, organization, owner):
    invitation = _invite(organization, owner)
    assert deliver_invitation(invitation.pk)
    assert not deliver_invitation(invitation.pk)
    assert len(mail.outbox) == 1
    _assert_the_mail_invites(client, invitation)


def test_after_a_failed_send_the_retry_mails_the_link(client, organization, owner, settings):
    invitation = _invite(organization, owner)
    working = settings.MAILERS
    settings.MAILERS = {"default": {"BACKEND": "tests.test_members.RefusingBackend"}}
    with pytest.raises(SMTPException):
        deliver_invitation(invitation.pk)
    invitation.refresh_from_db()
    assert invitation.email_sent_at is None
    assert mail.outbox == []
    settings.MAILERS = working
    assert deliver_invitation(invitation.pk)
    assert len(mail.outbox) == 1
    _assert_the_mail_invites(client, invitation)


class RefusingBackend(BaseEmailBackend):
    """An SMTP server that refuses every message."""

    def send_messages(self, email_messages):
        raise SMTPException("421 service not available")


@pytest.mark.worker
def test_a_real_worker_mails_the_invitation_after_commit(celery_worker_process):
    organization = OrganizationFactory()
    owner = MembershipFactory(organization=organization, role=Role.OWNER).user
    invitation = _invite(organization, owner)
    wait_for(lambda: Invitation.objects.get(pk=invitation.pk).email_sent_at is not None)


def test_a_token_resolves_to_its_pending_invitation(organization, owner):
    invitation = _invite(organization, owner)
    assert invitation_from_token(invitation_token(invitation)) == invitation


def test_a_tampered_token_is_refused(organization, owner):
    token = invitation_token(_invite(organization, owner))
    with pytest.raises(InvalidInvitation, match="not valid"):
        invitation_from_token(token[:-2] + ("AA" if not token.endswith("AA") else "BB"))


def test_a_link_older_than_seven_days_has_expired(organization, owner, monkeypatch):
    invitation = _invite(organization, owner)
    eight_days_ago = time.time() - timedelta(days=8).total_seconds()
    with monkeypatch.context() as patched:
        patched.setattr(signing.time, "time", lambda: eight_days_ago)
        token = invitation_token(invitation)
    with pytest.raises(InvalidInvitation, match="expired"):
        invitation_from_token(token)


def test_inviting_an_address_again_replaces_its_pending_invitation(organization, owner):
    _invite(organization, owner, role=Role.VIEWER)
    _invite(organization, owner, role=Role.ADMIN)
    assert Invitation.objects.pending().get(organization=organization).role == Role.ADMIN


def test_an_admin_withdraws_a_pending_invitation_and_its_link_stops_working(client, organization, admin_member):
    invitation = _invite(organization, admin_member)
    token = invitation_token(invitation)
    client.force_login(admin_member)
    members_page = client.get(reverse("members", args=[organization.code])).content.decode()
    assert reverse("invitation-withdraw", args=[organization.code, invitation.pk]) in members_page

    response = client.post(reverse("invitation-withdraw", args=[organization.code, invitation.pk]), follow=True)

    assert "no longer works" in response.content.decode()
    assert not Invitation.objects.filter(pk=invitation.pk).exists()
    with pytest.raises(InvalidInvitation, match="withdrawn"):
        invitation_from_token(token)
    entry = AuditEntry.objects.get(action=AuditEntry.Action.INVITATION_WITHDRAWN)
    assert (entry.actor, entry.target) == (admin_member, invitation.email)


def test_an_accepted_invitation_cannot_be_withdrawn(client, organization, owner):
    invitation = _invite(organization, owner)
    accept_invitation(invitation, user=UserFactory(email=invitation.email))
    client.force_login(owner)
    response = client.post(reverse("invitation-withdraw", args=[organization.code, invitation.pk]))
    assert response.status_code == 404
    assert not AuditEntry.objects.filter(action=AuditEntry.Action.INVITATION_WITHDRAWN).exists()


def test_a_viewer_cannot_withdraw_an_invitation(client, organization, owner, viewer):
    invitation = _invite(organization, owner)
    client.force_login(viewer)
    response = client.post(reverse("invitation-withdraw", args=[organization.code, invitation.pk]))
    assert response.status_code == 403
    assert Invitation.objects.pending().filter(pk=invitation.pk).exists()


def test_inviting_a_member_is_refused(organization, owner, viewer):
    with pytest.raises(MembershipError, match="already a member"):
        _invite(organization, owner, email=viewer.email.upper())


def test_only_an_owner_invites_an_owner(organization, admin_member):
    with pytest.raises(MembershipError, match="Only an owner"):
        _invite(organization, admin_member, role=Role.OWNER)


def test_accepting_makes_the_user_a_member_with_the_invited_role_once(organization, owner):
    invitation = _invite(organization, owner, email="Existing@Example.test", role=Role.OPERATOR)
    user = UserFactory(email="existing@example.test")
    membership = accept_invitation(invitation, user=user)
    assert (membership.organization, membership.role) == (organization, Role.OPERATOR)
    with pytest.raises(InvalidInvitation, match="already been used"):
        invitation_from_token(invitation_token(invitation))
    with pytest.raises(InvalidInvitation):
        accept_invitation(invitation, user=user)


def test_the_link_opened_while_signed_in_as_someone_else_says_so(client, organization, owner, outsider):
    invitation = _invite(organization, owner)
    client.force_login(outsider)
    page = client.get(reverse("invitation-accept", args=[invitation_token(invitation)]))
    assert f"you are signed in as {outsider.email}" in page.text
    assert "<button" not in page.text.split("<main", 1)[1]


def test_an_invitation_cannot_be_accepted_by_another_address(organization, owner, outsider):
    invitation = _invite(organization, owner)
    with pytest.raises(InvalidInvitation, match="was sent to new.person@example.test"):
        accept_invitation(invitation, user=outsider)
    assert not Membership.objects.filter(user=outsider, organization=organization).exists()


def test_accepting_the_link_without_an_account_creates_it_and_signs_in(
    client, organization, owner, django_capture_on_commit_callbacks
):
    client.force_login(owner)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("members", args=[organization.code]), {"email": "fresh@example.test", "role": "admin"}
        )
    assert response.status_code == 302
    client.logout()
    link = _link_in_last_mail()
    page = client.get(link)
    assert "Create account and join" in page.text
    response = client.post(
        link, {"full_name": "Fresh Person", "password1": "a-long-pass-phrase", "password2": "a-long-pass-phrase"}
    )
    assert response["Location"] == reverse("organization-overview", args=[organization.code])
    user = User.objects.get(email="fresh@example.test")
    assert user.check_password("a-long-pass-phrase")
    assert Membership.objects.get(user=user, organization=organization).role == Role.ADMIN
    assert client.get(response["Location"]).context["user"] == user


def test_a_person_with_an_account_signs_in_before_accepting(
    client, organization, owner, django_capture_on_commit_callbacks
):
    person = UserFactory(email="has.account@example.test")
    with django_capture_on_commit_callbacks(execute=True):
        _invite(organization, owner, email=person.email)
    link = _link_in_last_mail()
    assert "Sign in to accept" in client.get(link).text
    assert client.post(link)["Location"].startswith(reverse("login"))
    client.login(username=person.email, password=PASSWORD)
    client.post(link)
    assert Membership.objects.filter(user=person, organization=organization).exists()


def test_a_weak_password_keeps_what_was_typed_and_says_why(
    client, organization, owner, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        _invite(organization, owner)
    response = client.post(_link_in_last_mail(), {"full_name": "Ann", "password1": "123", "password2": "123"})
    assert response.status_code == 200
    assert "too short" in response.text
    assert 'value="Ann"' in response.text
    assert not User.objects.filter(email="new.person@example.test").exists()


def test_a_viewer_cannot_invite(client, organization, viewer):
    client.force_login(viewer)
    response = client.post(reverse("members", args=[organization.code]), {"email": "x@example.test", "role": "viewer"})
    assert response.status_code == 403
    assert not Invitation.objects.exists()


def test_an_admin_changes_a_viewers_role(organization, admin_member, viewer):
    membership = Membership.objects.get(user=viewer)
    change_role(membership, role=Role.OPERATOR, actor=admin_member)
    membership.refresh_from_db()
    assert membership.role == Role.OPERATOR
    entry = AuditEntry.objects.get(action=AuditEntry.Action.ROLE_CHANGED)
    assert (entry.actor, entry.target, entry.details) == (
        admin_member,
        viewer.email,
        {"from": "viewer", "to": "operator"},
    )


def test_an_admin_cannot_make_or_unmake_owners(organization, owner, admin_member, viewer):
    with pytest.raises(MembershipError, match="Only an owner"):
        change_role(Membership.objects.get(user=viewer), role=Role.OWNER, actor=admin_member)
    MembershipFactory(organization=organization, role=Role.OWNER)
    with pytest.raises(MembershipError, match="Only an owner"):
        change_role(Membership.objects.get(user=owner), role=Role.VIEWER, actor=admin_member)


def test_the_last_owner_cannot_be_demoted(organization, owner):
    with pytest.raises(LastOwnerError, match="last owner"):
        change_role(Membership.objects.get(user=owner), role=Role.ADMIN, actor=owner)
    assert Membership.objects.get(user=owner).role == Role.OWNER


def test_an_owner_may_step_down_once_there_is_another_owner(organization, owner):
    MembershipFactory(organization=organization, role=Role.OWNER)
    change_role(Membership.objects.get(user=owner), role=Role.ADMIN, actor=owner)
    assert Membership.objects.get(user=owner).role == Role.ADMIN


def test_the_last_owner_cannot_leave(client, organization, owner):
    client.force_login(owner)
    response = client.post(reverse("organization-leave", args=[organization.code]), follow=True)
    assert "The last owner cannot leave" in response.text
    assert Membership.objects.filter(user=owner, organization=organization).exists()


def test_a_member_leaves_and_the_log_says_so(client, organization, owner, viewer):
    client.force_login(viewer)
    response = client.post(reverse("organization-leave", args=[organization.code]))
    assert response["Location"] == reverse("home")
    assert not Membership.objects.filter(user=viewer).exists()
    assert AuditEntry.objects.get(action=AuditEntry.Action.MEMBER_LEFT).target == viewer.email


def test_an_admin_removes_an_operator(client, organization, admin_member, operator):
    client.force_login(admin_member)
    membership = Membership.objects.get(user=operator)
    client.post(reverse("member-remove", args=[organization.code, membership.pk]))
    assert not Membership.objects.filter(pk=membership.pk).exists()
    assert AuditEntry.objects.get(action=AuditEntry.Action.MEMBER_REMOVED).actor == admin_member


def test_an_admin_cannot_remove_an_owner(organization, owner, admin_member):
    with pytest.raises(MembershipError, match="Only an owner"):
        remove_member(Membership.objects.get(user=owner), actor=admin_member)


def test_the_role_form_through_the_page_changes_the_role_and_reports_the_last_owner_rule(
    client, organization, owner, viewer
):
    client.force_login(owner)
    viewer_membership = Membership.objects.get(user=viewer)
    client.post(reverse("member-role", args=[organization.code, viewer_membership.pk]), {"role": "admin"})
    viewer_membership.refresh_from_db()
    assert viewer_membership.role == Role.ADMIN
    own = Membership.objects.get(user=owner)
    response = client.post(reverse("member-role", args=[organization.code, own.pk]), {"role": "viewer"}, follow=True)
    assert "The last owner cannot be demoted" in response.text


def test_an_operator_cannot_change_roles(client, organization, operator, viewer):
    client.force_login(operator)
    membership = Membership.objects.get(user=viewer)
    response = client.post(reverse("member-role", args=[organization.code, membership.pk]), {"role": "admin"})
    assert response.status_code == 403


def test_the_members_page_lists_members_with_a_constant_number_of_queries(
    client, organization, owner, django_assert_max_num_queries
):
    MembershipFactory.create_batch(30, organization=organization, role=Role.VIEWER)
    client.force_login(owner)
    with django_assert_max_num_queries(12):
        response = client.get(reverse("members", args=[organization.code]))
    assert response.text.count('aria-label="Role of ') == 31


def _organization_admin_post(admin_client, organization, rows):
    """Save the organization's admin page with membership rows (user, role, delete) in order."""
    existing = list(organization.memberships.order_by("pk"))
    data = {
        "name": organization.name,
        "memberships-TOTAL_FORMS": str(len(rows)),
        "memberships-INITIAL_FORMS": str(len(existing)),
        "memberships-MIN_NUM_FORMS": "0",
        "memberships-MAX_NUM_FORMS": "1000",
    }
    for index, (user, role, delete) in enumerate(rows):
        prefix = f"memberships-{index}-"
        data |= {prefix + "user": str(user.pk), prefix + "role": role, prefix + "organization": str(organization.pk)}
        if index < len(existing):
            data[prefix + "id"] = str(existing[index].pk)
        if delete:
            data[prefix + "DELETE"] = "on"
    return admin_client.post(reverse("admin:accounts_organization_change", args=[organization.pk]), data)


def test_the_admin_cannot_demote_the_last_owner(admin_client, organization, owner):
    response = _organization_admin_post(admin_client, organization, [(owner, Role.ADMIN, False)])
    assert response.status_code == 200
    assert "must keep at least one owner" in response.text
    assert Membership.objects.get(user=owner).role == Role.OWNER


def test_the_admin_cannot_remove_the_last_owner(admin_client, organization, owner):
    response = _organization_admin_post(admin_client, organization, [(owner, Role.OWNER, True)])
    assert "must keep at least one owner" in response.text
    assert Membership.objects.filter(user=owner).exists()


def test_the_admin_hands_ownership_over_in_one_save_and_logs_it(admin_client, organization, owner, viewer):
    response = _organization_admin_post(
        admin_client, organization, [(owner, Role.VIEWER, False), (viewer, Role.OWNER, False)]
    )
    assert response.status_code == 302
    assert Membership.objects.get(user=owner).role == Role.VIEWER
    assert Membership.objects.get(user=viewer).role == Role.OWNER
    assert AuditEntry.objects.filter(action=AuditEntry.Action.ROLE_CHANGED).count() == 2


def test_a_member_added_in_the_admin_is_in_the_audit_log(admin_client, organization, owner):
    newcomer = UserFactory()
    _organization_admin_post(admin_client, organization, [(owner, Role.OWNER, False), (newcomer, Role.OPERATOR, False)])
    assert Membership.objects.get(user=newcomer).role == Role.OPERATOR
    entry = AuditEntry.objects.get(action=AuditEntry.Action.MEMBER_JOINED)
    assert (entry.target, entry.details["role"]) == (newcomer.email, Role.OPERATOR)
