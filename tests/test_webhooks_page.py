"""The Webhooks page: owners and admins add, change, test, roll and remove endpoints and resend
deliveries; the secret is shown once; everything that changes an endpoint is in the audit log."""

import re

import pytest
from django.urls import reverse

from accounts.models import AuditEntry
from webhooks.endpoints import send_ping
from webhooks.models import Delivery, Endpoint, EventName
from webhooks.secrets import decrypt_secret

from .factories import PASSWORD, sent_once_key, webhook_endpoint

URL = "https://hooks.example.com/portal"


def _page(organization):
    return reverse("webhooks", args=[organization.code])


def _signed_in(client, user):
    client.login(username=user.email, password=PASSWORD)
    return client


def _audit(action):
    return list(AuditEntry.objects.filter(action=action).values_list("target", flat=True))


@pytest.mark.parametrize("role", ["viewer", "operator"])
def test_members_who_do_not_manage_get_403(client, organization, role, request):
    response = _signed_in(client, request.getfixturevalue(role)).get(_page(organization))
    assert response.status_code == 403


def test_an_outsider_gets_404(client, organization, outsider):
    assert _signed_in(client, outsider).get(_page(organization)).status_code == 404


def test_the_overview_links_to_the_page(client, organization, owner):
    response = _signed_in(client, owner).get(reverse("organization-overview", args=[organization.code]))
    assert _page(organization) in response.content.decode()


def test_every_event_is_checked_by_default(client, organization, admin_member):
    response = _signed_in(client, admin_member).get(_page(organization))
    assert response.context["form"]["events"].initial == EventName.values


def test_adding_an_endpoint_shows_its_generated_secret_once(client, organization, owner):
    client = _signed_in(client, owner)
    response = client.post(
        _page(organization), {"url": URL, "events": ["device.claimed", "device.offline"], "sending": sent_once_key()}
    )

    endpoint, secret = response.context["new_secret"]
    assert secret in response.content.decode()
    assert len(secret) >= 32
    assert decrypt_secret(Endpoint.objects.get().secret_encrypted, endpoint.code) == secret
    assert Endpoint.objects.get().events == ["device.claimed", "device.offline"]
    assert secret not in client.get(_page(organization)).content.decode()
    assert _audit(AuditEntry.Action.WEBHOOK_ADDED) == [URL]


def test_a_typed_secret_is_kept_when_it_follows_the_rule(client, organization, owner):
    typed = "my.own-secret_0123456789abcdefghijkl"
    response = _signed_in(client, owner).post(
        _page(organization), {"url": URL, "secret": typed, "sending": sent_once_key()}
    )
    endpoint = Endpoint.objects.get()
    assert decrypt_secret(endpoint.secret_encrypted, endpoint.code) == typed
    assert response.context["new_secret"][1] == typed


@pytest.mark.parametrize("typed", ["too-short-0123456789", "has spaces in it 0123456789abcdefghij", "é" * 40])
def test_a_typed_secret_breaking_the_rule_is_refused_keeping_what_was_typed(client, organization, owner, typed):
    response = _signed_in(client, owner).post(
        _page(organization), {"url": URL, "secret": typed, "sending": sent_once_key()}
    )
    assert "at least 32" in str(response.context["form"].errors["secret"])
    assert response.context["form"]["url"].value() == URL
    assert not Endpoint.objects.exists()


@pytest.mark.parametrize(
    ("url", "message"),
    [("http://169.254.169.254/latest/meta-data/", "metadata"), ("http://10.0.0.8/hook", "private")],
)
def test_an_obviously_bad_url_is_refused_on_save(client, organization, owner, url, message):
    response = _signed_in(client, owner).post(_page(organization), {"url": url, "sending": sent_once_key()})
    assert message in str(response.context["form"].errors["url"])
    assert not Endpoint.objects.exists()


def test_changing_events_and_disabling_is_audited(client, organization, owner):
    endpoint, _ = webhook_endpoint(organization, URL)
    change = reverse("webhook-change", args=[organization.code, endpoint.code])

    _signed_in(client, owner).post(change, {"events": ["device.moved"]})

    endpoint.refresh_from_db()
    assert (endpoint.events, endpoint.enabled, endpoint.disabled_reason) == (
        ["device.moved"],
        False,
        "Disabled by a member.",
    )
    [entry] = AuditEntry.objects.filter(action=AuditEntry.Action.WEBHOOK_CHANGED)
    assert entry.details["to"] == {"events": ["device.moved"], "enabled": False}


def test_rolling_the_secret_shows_a_new_one_once(client, organization, owner):
    endpoint, old = webhook_endpoint(organization, URL)
    response = _signed_in(client, owner).post(reverse("webhook-roll-secret", args=[organization.code, endpoint.code]))

    new = response.context["new_secret"][1]
    assert new != old
    assert new in response.content.decode()
    assert decrypt_secret(Endpoint.objects.get().secret_encrypted, endpoint.code) == new
    assert _audit(AuditEntry.Action.WEBHOOK_CHANGED) == [URL]


def test_removing_an_endpoint_is_audited(client, organization, owner):
    endpoint, _ = webhook_endpoint(organization, URL)
    _signed_in(client, owner).post(reverse("webhook-remove", args=[organization.code, endpoint.code]))
    assert not Endpoint.objects.exists()
    assert _audit(AuditEntry.Action.WEBHOOK_REMOVED) == [URL]


def test_a_test_event_and_its_resend_are_listed_with_their_status(client, organization, owner):
    endpoint, _ = webhook_endpoint(organization, URL)
    client = _signed_in(client, owner)
    client.post(reverse("webhook-ping", args=[organization.code, endpoint.code]))
    ping = Delivery.objects.get()
    assert ping.event.event == "ping"

    client.post(reverse("webhook-resend", args=[organization.code, ping.code]))

    first, second = Delivery.objects.order_by("id")
    assert first.event_id == second.event_id
    listed = client.get(_page(organization))
    assert [delivery.code for delivery in listed.context["deliveries"]] == [second.code, first.code]
    assert "Resend" in listed.content.decode()


def test_another_organizations_delivery_cannot_be_resent(client, organization, owner, outsider):
    theirs, _ = webhook_endpoint(outsider.memberships.get().organization, URL)
    delivery = send_ping(theirs, actor=outsider).deliveries.get()
    response = _signed_in(client, owner).post(reverse("webhook-resend", args=[organization.code, delivery.code]))
    assert response.status_code == 404
    assert Delivery.objects.count() == 1


def test_the_page_that_showed_a_new_secret_sent_again_by_a_reload_adds_no_second_endpoint(client, organization, owner):
    page = _signed_in(client, owner).get(_page(organization)).content.decode()
    key = re.search(r'name="sending" value="([^"]+)"', page).group(1)
    first = client.post(_page(organization), {"url": URL, "sending": key})
    assert first["Cache-Control"] == "no-store"
    again = client.post(_page(organization), {"url": URL, "sending": key})
    assert "This form was already sent" in again.content.decode()
    assert Endpoint.objects.count() == 1
