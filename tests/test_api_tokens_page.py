"""The API tokens page: created with a role and an optional last day, shown once, listed with its
last use, revoked at once; the audit log names what a token did; a token's account is no person
(it never signs in, resets a password, joins, shows among members or gets alert e-mails)."""

import csv
import io
import re
from datetime import UTC, datetime, timedelta

import pytest
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from accounts.members import MembershipError, add_member, invite_member
from accounts.models import AuditEntry, Role
from apitokens.models import ApiToken
from tests.factories import ActivatedDeviceFactory, api_token, sent_once_key

pytestmark = pytest.mark.django_db


def tokens_url(organization):
    return reverse("api-tokens", kwargs={"code": organization.code})


def bearer(raw):
    return {"HTTP_AUTHORIZATION": f"Bearer {raw}"}


def create(client, organization, **fields):
    return client.post(
        tokens_url(organization), {"name": "Inventory", "role": Role.OPERATOR, "sending": sent_once_key(), **fields}
    )


def test_the_overview_links_managers_to_the_tokens_page(client, organization, owner, viewer):
    overview = reverse("organization-overview", kwargs={"code": organization.code})
    client.force_login(owner)
    assert tokens_url(organization) in client.get(overview).content.decode()
    client.force_login(viewer)
    assert tokens_url(organization) not in client.get(overview).content.decode()


def test_a_new_token_is_shown_once_in_the_answer_and_works_against_the_api(client, organization, owner):
    client.force_login(owner)
    response = create(client, organization)
    assert response.status_code == 200
    raw = response.context["raw_token"]
    assert raw in response.content.decode()
    assert response["Cache-Control"] == "no-store"
    assert raw not in str(dict(client.session))
    assert raw not in client.get(tokens_url(organization)).content.decode(), "shown once"
    token = ApiToken.objects.get()
    assert (token.name, token.role, token.created_by, token.expires_at) == ("Inventory", Role.OPERATOR, owner, None)
    assert client.get("/api/v1/org/spaces", **bearer(raw)).status_code == 200


def test_the_list_shows_each_token_s_name_prefix_role_creator_last_use_and_status(client, organization, owner):
    used, raw = api_token(organization, Role.VIEWER, name="Ticketing", actor=owner)
    api_token(organization, Role.ADMIN, name="Old script", actor=owner, expires_at=timezone.now() - timedelta(days=1))
    client.get("/api/v1/org/spaces", **bearer(raw))
    client.force_login(owner)
    page = client.get(tokens_url(organization)).content.decode()
    for text in ("Ticketing", used.prefix, "Viewer", owner.email, "Old script", "Admin", "Expired", "Active"):
        assert text in page
    used.refresh_from_db()
    assert used.last_used_at is not None
    assert used.last_used_at.strftime("%Y-%m-%d %H:%M") in page


def test_a_last_day_makes_the_token_work_until_that_day_ends_and_a_past_day_is_refused(client, organization, owner):
    client.force_login(owner)
    tomorrow = timezone.now().date() + timedelta(days=1)
    assert create(client, organization, expires_on=tomorrow.isoformat()).status_code == 200
    assert ApiToken.objects.get().expires_at == datetime.combine(tomorrow + timedelta(days=1), datetime.min.time(), UTC)
    past = create(client, organization, name="Typed", expires_on=(tomorrow - timedelta(days=2)).isoformat())
    assert past.status_code == 200
    assert "That day is past" in past.content.decode()
    assert 'value="Typed"' in past.content.decode(), "what was typed is kept"
    assert ApiToken.objects.count() == 1


def test_revoking_asks_first_then_refuses_the_token_at_once(client, organization, owner):
    token, raw = api_token(organization, actor=owner)
    url = reverse("api-token-revoke", kwargs={"code": organization.code, "token": token.code})
    client.force_login(owner)
    assert "Revoke the token" in client.get(url).content.decode()
    assert client.get("/api/v1/org/spaces", **bearer(raw)).status_code == 200, "a GET only asks"
    assert client.post(url).status_code == 302
    assert client.get("/api/v1/org/spaces", **bearer(raw)).status_code == 401
    assert "Revoked" in client.get(tokens_url(organization)).content.decode()


@pytest.mark.parametrize("role", [Role.OPERATOR, Role.VIEWER])
def test_operators_and_viewers_get_403_and_create_nothing(client, organization, request, role):
    member = request.getfixturevalue("operator" if role == Role.OPERATOR else "viewer")
    client.force_login(member)
    assert client.get(tokens_url(organization)).status_code == 403
    assert create(client, organization).status_code == 403
    assert not ApiToken.objects.exists()


def test_an_admin_manages_tokens_and_an_outsider_gets_404(client, organization, admin_member, outsider):
    client.force_login(admin_member)
    assert create(client, organization).status_code == 200
    client.force_login(outsider)
    assert client.get(tokens_url(organization)).status_code == 404
    assert create(client, organization).status_code == 404
    assert ApiToken.objects.count() == 1


def test_the_audit_log_names_a_token_s_actions_by_the_token_and_filters_by_it(client, organization, owner, space):
    token, raw = api_token(organization, Role.OPERATOR, name="Ticketing", actor=owner)
    device = ActivatedDeviceFactory(space=space)
    client.post(
        f"/api/v1/org/devices/{device.code}/commands",
        data={"name": "reboot"},
        content_type="application/json",
        **bearer(raw),
    )
    client.force_login(owner)
    log = reverse("audit-log", kwargs={"code": organization.code})
    page = client.get(log).content.decode()
    assert "API token “Ticketing”" in page
    assert token.user.email not in re.sub(r"<[^>]*>", "", page), "shown as the token, not its made-up address"
    filtered = client.get(log, {"actor": token.user.email})
    entries = list(filtered.context["entries"])
    assert [entry.action for entry in entries] == [AuditEntry.Action.COMMAND_SENT]
    export = client.get(reverse("audit-log-csv", kwargs={"code": organization.code}), {"actor": token.user.email})
    rows = list(csv.reader(io.StringIO(b"".join(export.streaming_content).decode())))
    assert [row[1] for row in rows[1:]] == ["API token “Ticketing”"]


def test_a_token_s_account_cannot_sign_in_even_with_a_password_set(client, organization, owner):
    token, _ = api_token(organization, actor=owner)
    token.user.set_password("a-password-someone-set")
    token.user.save()
    response = client.post(reverse("login"), {"username": token.user.email, "password": "a-password-someone-set"})
    assert response.status_code == 200
    assert "_auth_user_id" not in client.session
    client.force_login(token.user)
    assert client.get(tokens_url(organization)).status_code == 302, "an inactive account's session is no session"


def test_a_token_s_account_gets_no_password_reset_mail(client, organization, owner):
    token, _ = api_token(organization, actor=owner)
    client.post(reverse("password_reset"), {"email": token.user.email})
    assert mail.outbox == []


def test_a_token_s_account_can_be_neither_invited_nor_added_as_a_member(organization, owner):
    token, _ = api_token(organization, actor=owner)
    with pytest.raises(MembershipError):
        invite_member(organization, email=token.user.email.upper(), role=Role.ADMIN, actor=owner, link_origin="")
    with pytest.raises(MembershipError):
        add_member(organization, user=token.user, role=Role.ADMIN, actor=owner)
    assert not token.user.memberships.exists()


def test_a_token_is_not_listed_among_members(client, organization, owner):
    token, _ = api_token(organization, name="Ticketing", actor=owner)
    client.force_login(owner)
    page = client.get(reverse("members", kwargs={"code": organization.code})).content.decode()
    assert "Ticketing" not in page
    assert token.user.email not in page


def test_a_token_s_account_gets_no_offline_alert(organization, owner, space):
    from devices.models import Device
    from devices.tasks import record_connectivity_changes

    token, _ = api_token(organization, Role.ADMIN, actor=owner)
    device = ActivatedDeviceFactory(space=space, online=True, last_seen_at=timezone.now())
    Device.objects.filter(pk=device.pk).update(last_seen_at=timezone.now() - timedelta(hours=1))
    record_connectivity_changes()
    recipients = [address for message in mail.outbox for address in message.to]
    assert owner.email in recipients, "the alert went out: otherwise this proves nothing"
    assert token.user.email not in recipients


def test_the_page_that_showed_a_token_sent_again_by_a_reload_creates_no_second_one(client, organization, owner):
    client.force_login(owner)
    page = client.get(tokens_url(organization)).content.decode()
    key = re.search(r'name="sending" value="([^"]+)"', page).group(1)
    sent = {"name": "Inventory", "role": Role.OPERATOR, "sending": key}
    assert 'id="new-token"' in client.post(tokens_url(organization), sent).content.decode()

    again = client.post(tokens_url(organization), sent)
    assert again.status_code == 200
    assert "This form was already sent" in again.content.decode()
    assert 'id="new-token"' not in again.content.decode()
    assert ApiToken.objects.count() == 1
