"""Passkeys in real headless Chromium, with the DevTools protocol's virtual authenticator: a person
adds one on their account page and signs in with it instead of a password, under the portal's
Content-Security-Policy."""

import pytest
from django.core.cache import cache
from django_otp_webauthn.models import WebAuthnCredential

from .factories import PASSWORD, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _virtual_authenticator(page):
    cdp = page.context.new_cdp_session(page)
    cdp.send("WebAuthn.enable")
    options = {
        "protocol": "ctap2",
        "transport": "internal",
        "hasResidentKey": True,
        "hasUserVerification": True,
        "isUserVerified": True,
    }
    authenticator = cdp.send("WebAuthn.addVirtualAuthenticator", {"options": options})
    return cdp, authenticator["authenticatorId"]


def _person_with_a_passkey(live_server, page, settings):
    """Sign in with the password, add a passkey named "Work laptop" on the account page, sign out."""
    assert live_server.url.startswith("http://localhost:")  # a secure context, the passkeys' domain
    settings.OTP_WEBAUTHN_RP_ID = "localhost"
    settings.OTP_WEBAUTHN_ALLOWED_ORIGINS = [live_server.url]
    cache.clear()
    user = UserFactory(email="passkey.person@example.test")
    cdp, authenticator_id = _virtual_authenticator(page)

    page.goto(f"{live_server.url}/accounts/login/")
    page.get_by_label("E-mail address").fill(user.email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()
    page.get_by_role("link", name=user.email).click()
    page.get_by_role("button", name="Add a passkey").click()
    page.get_by_label("Name of the passkey").fill("Work laptop")
    page.get_by_role("button", name="Rename").click()
    page.get_by_text("The passkey is renamed.").wait_for()
    page.screenshot(path=page.artifacts / "1-passkey-added.png", full_page=True)
    assert list(WebAuthnCredential.objects.filter(user=user, confirmed=True).values_list("name", flat=True)) == [
        "Work laptop"
    ]
    assert len(cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator_id})["credentials"]) == 1
    with page.expect_navigation(url="**/accounts/login/"):
        page.get_by_role("button", name="Sign out").click()
    return user


def _refusals_by_policy(page):
    refused = []
    page.on("console", lambda message: "Content Security Policy" in message.text and refused.append(message.text))
    return refused


def test_a_person_adds_a_passkey_and_the_sign_in_page_offers_it_in_the_e_mail_field(live_server, page, settings):
    refused_by_policy = _refusals_by_policy(page)
    user = _person_with_a_passkey(live_server, page, settings)

    # Signed out, the sign-in page's e-mail field asks the browser for passkey autofill (conditional
    # mediation); Chromium's virtual authenticator picks the one passkey as a person would in the list.
    page.get_by_role("button", name="Sign out").wait_for()
    page.screenshot(path=page.artifacts / "2-signed-in-by-passkey-autofill.png", full_page=True)
    assert page.get_by_role("link", name=user.email).is_visible()
    assert WebAuthnCredential.objects.get(user=user).last_used_at is not None
    assert refused_by_policy == []


def test_a_person_signs_in_with_the_use_a_passkey_button_instead_of_a_password(live_server, page, settings):
    refused_by_policy = _refusals_by_policy(page)
    # A browser without passkey autofill: only the button can start the passkey sign-in.
    page.add_init_script("PublicKeyCredential.isConditionalMediationAvailable = async () => false;")
    user = _person_with_a_passkey(live_server, page, settings)

    assert page.get_by_role("button", name="Sign out").count() == 0
    page.get_by_role("button", name="Use a passkey").click()
    page.get_by_role("button", name="Sign out").wait_for()
    page.screenshot(path=page.artifacts / "3-signed-in-with-the-passkey-button.png", full_page=True)
    assert page.get_by_role("link", name=user.email).is_visible()
    assert WebAuthnCredential.objects.get(user=user).last_used_at is not None
    assert refused_by_policy == []
