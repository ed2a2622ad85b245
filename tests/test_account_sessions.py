"""A person's signed-in sessions: listed on the account page (browser, address, last used, never
the key), ended one by one or all but this one; a password change or a second factor turned off
ends the others."""

import pytest
from django.test import Client
from django.urls import reverse

from accounts.models import UserSession
from accounts.sessions import session_reference

from .factories import PASSWORD, UserFactory, authenticator, authenticator_code

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_throttle")]


def _signed_in(user, agent, address):
    browser = Client(HTTP_USER_AGENT=agent, REMOTE_ADDR=address)
    assert browser.post(reverse("login"), {"username": user.email, "password": PASSWORD}).status_code == 302
    return browser


def _is_signed_in(browser):
    return browser.get(reverse("home")).status_code == 200


def test_the_account_page_lists_each_session_with_its_browser_address_and_time_but_not_its_key():
    user = UserFactory()
    laptop = _signed_in(user, "Firefox on the laptop", "192.0.2.10")
    _signed_in(user, "Safari on the phone", "198.51.100.20")
    _signed_in(UserFactory(), "Someone else's browser", "203.0.113.30")

    page = laptop.get(reverse("account"))
    sessions = page.context["sessions"]
    assert [(s.user_agent, s.ip, s.current) for s in sessions] == [
        ("Firefox on the laptop", "192.0.2.10", True),
        ("Safari on the phone", "198.51.100.20", False),
    ]
    assert all(s.last_used_at for s in sessions)
    assert "Someone else" not in page.text
    for key in UserSession.objects.values_list("session_key", flat=True):
        assert key not in page.text


def test_a_session_is_ended_from_another_and_signed_out_at_once():
    user = UserFactory()
    laptop = _signed_in(user, "Laptop", "192.0.2.10")
    phone = _signed_in(user, "Phone", "198.51.100.20")
    phone_reference = session_reference(phone.session.session_key)

    laptop.post(reverse("session-end", args=[phone_reference]))

    assert not _is_signed_in(phone)
    assert _is_signed_in(laptop)
    assert [s.user_agent for s in laptop.get(reverse("account")).context["sessions"]] == ["Laptop"]


def test_no_one_ends_another_persons_session():
    victim_browser = _signed_in(UserFactory(), "Victim", "192.0.2.10")
    attacker = _signed_in(UserFactory(), "Attacker", "198.51.100.20")
    attacker.post(reverse("session-end", args=[session_reference(victim_browser.session.session_key)]))
    assert _is_signed_in(victim_browser)


def test_ending_all_other_sessions_keeps_this_one():
    user = UserFactory()
    laptop = _signed_in(user, "Laptop", "192.0.2.10")
    others = [_signed_in(user, f"Browser {n}", "198.51.100.20") for n in range(3)]
    laptop.post(reverse("sessions-end-others"))
    assert _is_signed_in(laptop)
    assert not any(_is_signed_in(browser) for browser in others)
    assert UserSession.objects.filter(user=user).count() == 1


def test_a_password_change_ends_the_other_sessions_and_keeps_this_one():
    user = UserFactory()
    laptop = _signed_in(user, "Laptop", "192.0.2.10")
    phone = _signed_in(user, "Phone", "198.51.100.20")
    new_password = "another-long-pass-9"
    response = laptop.post(
        reverse("password_change"),
        {"old_password": PASSWORD, "new_password1": new_password, "new_password2": new_password},
    )
    assert response.status_code == 302
    assert _is_signed_in(laptop)
    assert not _is_signed_in(phone)
    assert UserSession.objects.filter(user=user).count() == 1


def test_turning_the_second_factor_off_ends_the_other_sessions():
    user = UserFactory()
    device = authenticator(user)
    browsers = []
    for steps_ahead, agent in enumerate(["Laptop", "Phone"]):
        browser = _signed_in(user, agent, "192.0.2.10")
        browser.post(reverse("two-factor-code"), {"code": authenticator_code(device, steps_ahead=steps_ahead - 1)})
        browsers.append(browser)
    laptop, phone = browsers
    assert _is_signed_in(phone)
    laptop.post(reverse("two-factor-turn-off"), {"code": authenticator_code(device, steps_ahead=1)})
    assert not device.__class__.objects.filter(user=user).exists()
    assert _is_signed_in(laptop)
    assert not _is_signed_in(phone)


def test_the_time_of_use_is_written_at_most_once_a_minute(client):
    user = UserFactory()
    browser = _signed_in(user, "Laptop", "192.0.2.10")
    first = UserSession.objects.get(user=user).last_used_at
    browser.get(reverse("home"))
    assert UserSession.objects.get(user=user).last_used_at == first
