"""Security headers on every page: a CSP without unsafe-inline, no framing, no sniffing, HttpOnly cookies."""

import pytest
from django.urls import reverse

from .factories import PASSWORD, UserFactory

pytestmark = pytest.mark.django_db


def test_pages_send_a_strict_content_security_policy(client, owner, organization):
    client.force_login(owner)
    response = client.get(reverse("organization-overview", args=[organization.code]))
    policy = response["Content-Security-Policy"]
    directives = dict(part.strip().split(" ", 1) for part in policy.split(";"))
    assert "unsafe-inline" not in policy
    assert "unsafe-eval" not in policy
    # A nonce appears only on pages that use one; never a blanket allowance.
    assert directives["script-src"].split(" ")[0] == "'self'"
    assert directives["style-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"
    assert directives["object-src"] == "'none'"


def test_pages_forbid_framing_and_sniffing(client):
    response = client.get(reverse("login"))
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"


def test_rendered_pages_contain_no_inline_script_or_style(client, owner, organization):
    client.force_login(owner)
    for url in (
        reverse("organization-overview", args=[organization.code]),
        reverse("members", args=[organization.code]),
        reverse("audit-log", args=[organization.code]),
        reverse("password_change"),
    ):
        text = client.get(url).text
        assert "<script>" not in text
        assert " style=" not in text
        assert "<style" not in text


def test_the_session_and_csrf_cookies_are_http_only(client):
    user = UserFactory()
    client.get(reverse("login"))
    response = client.post(reverse("login"), {"username": user.email, "password": PASSWORD})
    assert response.cookies["sessionid"]["httponly"]
    assert client.cookies["csrftoken"]["httponly"]
