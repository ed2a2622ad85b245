"""Signing in with a second factor: the authenticator app's setup, the code step after the
password, recovery codes, and wrong codes throttled like wrong passwords."""

import re
import threading

import pytest
from django.core.cache import cache
from django.db import connection
from django.urls import reverse
from django_otp.plugins.otp_static.models import StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.two_factor import regenerate_recovery_codes

from .factories import PASSWORD, UserFactory, authenticator, authenticator_code

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_counters(settings):
    settings.TWO_FACTOR_FAILURE_LIMIT_PER_ACCOUNT = 3
    cache.clear()
    yield
    cache.clear()


def _password_step(client, user, password=PASSWORD, next_url=""):
    data = {"username": user.email, "password": password}
    if next_url:
        data["next"] = next_url
    return client.post(reverse("login"), data, REMOTE_ADDR="203.0.113.7")


def _code_step(client, code, address="203.0.113.7"):
    return client.post(reverse("two-factor-code"), {"code": code}, REMOTE_ADDR=address)


def test_setting_up_an_authenticator_app_takes_effect_only_once_a_code_confirms_it(client):
    user = UserFactory()
    client.force_login(user)
    page = client.get(reverse("two-factor-setup"))
    assert page.status_code == 200
    assert "<svg" in page.text  # the QR code, as markup: no script, no image request
    device = TOTPDevice.objects.get(user=user)
    assert not device.confirmed
    secret = page.context["secret"].replace(" ", "")
    assert secret in device.config_url

    wrong = client.post(
        reverse("two-factor-setup"), {"code": "000000" if authenticator_code(device) != "000000" else "111111"}
    )
    assert "That code is not right" in wrong.text
    assert not TOTPDevice.objects.get(pk=device.pk).confirmed

    done = client.post(reverse("two-factor-setup"), {"code": authenticator_code(device)})
    assert done.status_code == 200
    assert TOTPDevice.objects.get(pk=device.pk).confirmed
    assert len(done.context["codes"]) == 10
    assert StaticToken.objects.filter(device__user=user).count() == 10
    # Stored as keyed hashes, never as the codes shown.
    shown = {code.replace("-", "") for code in done.context["codes"]}
    assert not shown & set(StaticToken.objects.values_list("token", flat=True))


def test_an_account_with_an_authenticator_app_is_signed_in_only_after_its_code(client):
    user = UserFactory()
    device = authenticator(user)
    response = _password_step(client, user, next_url="/accounts/security/")
    assert response["Location"] == reverse("two-factor-code") + "?next=%2Faccounts%2Fsecurity%2F"
    assert "_auth_user_id" not in client.session
    assert client.get(reverse("home"))["Location"].startswith(reverse("login"))

    code_page = client.get(response["Location"])
    assert "Authentication code" in code_page.text
    signed_in = client.post(
        reverse("two-factor-code"), {"code": authenticator_code(device), "next": "/accounts/security/"}
    )
    assert signed_in["Location"] == "/accounts/security/"
    assert client.session["_auth_user_id"] == str(user.pk)
    assert client.get(reverse("home")).status_code == 200


def test_the_password_step_answers_the_same_for_accounts_with_and_without_a_second_factor(client):
    plain, guarded = UserFactory(), UserFactory()
    authenticator(guarded)
    wrong_plain = _password_step(client, plain, password="wrong")
    wrong_guarded = _password_step(client, guarded, password="wrong")
    assert wrong_plain.status_code == wrong_guarded.status_code == 200
    assert _without_tokens(wrong_plain.text, plain) == _without_tokens(wrong_guarded.text, guarded)


def _without_tokens(page, user):
    """The page less what differs on every answer (CSRF tokens, CSP nonces) and the address typed."""
    page = re.sub(r'value="[A-Za-z0-9]{64}"|"csrfToken": "[A-Za-z0-9]{64}"|nonce="[^"]*"', "TOKEN", page)
    return page.replace(user.email, "EMAIL")


def test_the_code_step_without_the_password_step_goes_back_to_the_password(client):
    assert client.get(reverse("two-factor-code"))["Location"].startswith(reverse("login"))
    assert _code_step(client, "123456")["Location"].startswith(reverse("login"))


def test_an_authentication_code_is_accepted_once(client):
    user = UserFactory()
    device = authenticator(user)
    code = authenticator_code(device)
    _password_step(client, user)
    assert _code_step(client, code).status_code == 302
    client.logout()
    _password_step(client, user)
    assert "That code is not right" in _code_step(client, code).text


def test_a_recovery_code_signs_in_once(client):
    user = UserFactory()
    authenticator(user)
    codes = regenerate_recovery_codes(user)
    _password_step(client, user)
    assert _code_step(client, codes[0].upper())["Location"] == reverse("home")
    assert StaticToken.objects.filter(device__user=user).count() == 9
    client.logout()
    _password_step(client, user)
    assert "That code is not right" in _code_step(client, codes[0]).text
    assert "_auth_user_id" not in client.session


def test_wrong_codes_are_throttled_and_then_even_the_right_one_is_refused(client):
    user = UserFactory()
    device = authenticator(user)
    _password_step(client, user)
    for _ in range(3):
        assert "That code is not right" in _code_step(client, "000000").text
    refused = _code_step(client, authenticator_code(device))
    assert "Too many failed codes for this account" in refused.text
    assert "_auth_user_id" not in client.session


def test_signing_in_again_with_the_password_does_not_reset_the_codes_count(client):
    user = UserFactory()
    device = authenticator(user)
    for _ in range(3):
        _password_step(client, user)
        _code_step(client, "000000")
    _password_step(client, user)
    assert "Too many failed codes" in _code_step(client, authenticator_code(device)).text


@pytest.mark.django_db(transaction=True)
def test_parallel_wrong_codes_cannot_all_slip_under_the_limit():
    """Twelve guesses at once from twelve addresses: each is counted before it is checked, so no
    more than the limit are ever checked, and the right code is refused afterwards."""
    from django.test import Client

    user = UserFactory()
    device = authenticator(user)
    clients = []
    for index in range(12):
        guesser = Client()
        _password_step(guesser, user)
        clients.append((guesser, f"198.51.100.{index}"))
    barrier = threading.Barrier(len(clients))
    answers = []

    def guess(guesser, address):
        try:
            barrier.wait()
            answers.append(_code_step(guesser, "000000", address=address).text)
        finally:
            connection.close()

    threads = [threading.Thread(target=guess, args=pair) for pair in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sum("That code is not right" in answer for answer in answers) == 3
    assert sum("Too many failed codes" in answer for answer in answers) == 9
    assert "Too many failed codes" in _code_step(clients[0][0], authenticator_code(device)).text


def test_turning_two_factor_off_asks_for_a_current_code(client):
    user = UserFactory()
    device = authenticator(user)
    _password_step(client, user)
    _code_step(client, authenticator_code(device))
    client.post(reverse("two-factor-turn-off"), {"code": "000000"})
    assert TOTPDevice.objects.filter(user=user).exists()
    client.post(reverse("two-factor-turn-off"), {"code": authenticator_code(device, steps_ahead=1)})
    assert not TOTPDevice.objects.filter(user=user).exists()
    assert not StaticToken.objects.filter(device__user=user).exists()


def test_new_recovery_codes_replace_the_old_ones(client):
    user = UserFactory()
    device = authenticator(user)
    old = regenerate_recovery_codes(user)
    _password_step(client, user)
    _code_step(client, authenticator_code(device))
    new = client.post(reverse("recovery-codes")).context["codes"]
    assert len(new) == 10
    assert not set(new) & set(old)
    client.logout()
    _password_step(client, user)
    assert "That code is not right" in _code_step(client, old[1]).text
    assert _code_step(client, new[1]).status_code == 302


def test_a_session_older_than_the_account_s_second_factor_must_use_it_before_changing_the_password(client):
    user = UserFactory()
    client.force_login(user)  # signed in with the password alone, before the factor was set up
    device = authenticator(user)
    change = {"old_password": PASSWORD, "new_password1": "a-new-pass-2026!", "new_password2": "a-new-pass-2026!"}

    refused = client.post(reverse("password_change"), change)
    assert refused.status_code == 302
    assert refused["Location"].startswith(reverse("two-factor-code"))
    user.refresh_from_db()
    assert user.check_password(PASSWORD)

    _code_step(client, authenticator_code(device))
    assert client.post(reverse("password_change"), change).status_code == 302
    user.refresh_from_db()
    assert user.check_password("a-new-pass-2026!")
