"""Failed sign-ins are throttled per account and per address, in the shared Redis cache."""

import pytest
from django.core.cache import cache
from django.urls import reverse

from .factories import PASSWORD, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_counters(settings):
    settings.SIGN_IN_FAILURE_LIMIT_PER_ACCOUNT = 3
    settings.SIGN_IN_FAILURE_LIMIT_PER_ADDRESS = 5
    cache.clear()
    yield
    cache.clear()


def _sign_in(client, email, password, address="203.0.113.7"):
    return client.post(reverse("login"), {"username": email, "password": password}, REMOTE_ADDR=address)


def test_a_correct_password_signs_in(client):
    user = UserFactory()
    assert _sign_in(client, user.email, PASSWORD)["Location"] == reverse("home")


def test_after_too_many_failures_the_account_is_paused_even_with_the_right_password(client):
    user = UserFactory()
    for _ in range(3):
        assert "Please enter a correct" in _sign_in(client, user.email, "wrong").text
    response = _sign_in(client, user.email, PASSWORD)
    assert response.status_code == 200
    assert "Too many failed sign-ins for this account" in response.text
    assert "_auth_user_id" not in client.session


def test_the_account_pause_holds_from_another_address(client):
    user = UserFactory()
    for index in range(3):
        _sign_in(client, user.email, "wrong", address=f"198.51.100.{index}")
    assert "for this account" in _sign_in(client, user.email.upper(), PASSWORD, address="192.0.2.200").text


def test_one_address_trying_many_accounts_is_paused(client):
    victims = UserFactory.create_batch(6)
    for victim in victims[:5]:
        _sign_in(client, victim.email, "wrong")
    response = _sign_in(client, victims[5].email, PASSWORD)
    assert "Too many failed sign-ins for your network address" in response.text
    assert _sign_in(client, victims[5].email, PASSWORD, address="192.0.2.9")["Location"] == reverse("home")


def test_a_successful_sign_in_clears_the_accounts_count(client):
    user = UserFactory()
    for _ in range(2):
        _sign_in(client, user.email, "wrong")
    _sign_in(client, user.email, PASSWORD)
    client.logout()
    for _ in range(2):
        _sign_in(client, user.email, "wrong")
    assert _sign_in(client, user.email, PASSWORD)["Location"] == reverse("home")


def test_unknown_accounts_are_counted_like_real_ones(client):
    for _ in range(3):
        _sign_in(client, "nobody@example.test", "wrong")
    assert "for this account" in _sign_in(client, "nobody@example.test", "wrong").text


def test_the_admin_sign_in_is_throttled_too(client):
    staff = UserFactory(is_staff=True)
    for _ in range(3):
        client.post(reverse("admin:login"), {"username": staff.email, "password": "wrong"}, REMOTE_ADDR="203.0.113.8")
    response = client.post(
        reverse("admin:login"), {"username": staff.email, "password": PASSWORD}, REMOTE_ADDR="203.0.113.8"
    )
    assert "Too many failed sign-ins for this account" in response.text


def test_behind_a_proxy_the_forwarded_client_address_is_counted_not_the_proxys(client, settings):
    settings.TRUSTED_PROXY_COUNT = 1
    victims = UserFactory.create_batch(6)
    for victim in victims[:5]:
        client.post(
            reverse("login"),
            {"username": victim.email, "password": "wrong"},
            REMOTE_ADDR="10.0.0.1",
            HTTP_X_FORWARDED_FOR=f"192.0.2.{victim.pk % 200}, 203.0.113.50",
        )
    other_client = client.post(
        reverse("login"),
        {"username": victims[5].email, "password": PASSWORD},
        REMOTE_ADDR="10.0.0.1",
        HTTP_X_FORWARDED_FOR="198.51.100.20",
    )
    assert other_client["Location"] == reverse("home")
    client.logout()
    attacker = client.post(
        reverse("login"),
        {"username": victims[5].email, "password": PASSWORD},
        REMOTE_ADDR="10.0.0.1",
        HTTP_X_FORWARDED_FOR="198.51.100.99, 203.0.113.50",
    )
    assert "for your network address" in attacker.text
