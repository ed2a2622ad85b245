"""Rate limits as attackers meet them: clients behind one proxy, parallel guesses, a Redis shared by
two deployments, and counters that cannot be reached."""

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.core.cache import cache
from django.core.management import call_command
from django.db import connection
from django.test import Client, override_settings
from django.urls import reverse

from devices.claims import ClaimingUnavailable, claim_device
from devices.models import ActivationOperation
from portal.ratelimit import RateLimit, RateLimitExceeded, count_attempt, take_back
from portal.redis import redis_client

from .factories import PASSWORD, ApprovedIdentityFactory, UserFactory

ACTIVATIONS = "/api/v1/activations"


@pytest.fixture(autouse=True)
def fresh_counters():
    cache.clear()
    yield
    cache.clear()


def _malformed_activation(client, forwarded_for):
    return client.post(
        ACTIVATIONS,
        "not json",
        content_type="application/json",
        REMOTE_ADDR="10.0.0.1",
        HTTP_X_FORWARDED_FOR=forwarded_for,
    )


@pytest.mark.django_db
def test_two_devices_behind_one_proxy_are_limited_apart(client, settings):
    settings.TRUSTED_PROXY_COUNT = 1
    settings.ACTIVATION_RATE_PER_ADDRESS = 3
    statuses = [_malformed_activation(client, "198.51.100.1").status_code for _ in range(4)]
    assert statuses == [400, 400, 400, 429], "the noisy client is limited by its own address"
    assert _malformed_activation(client, "198.51.100.2").status_code == 400, "its neighbour behind the proxy is not"


@pytest.mark.django_db
def test_a_client_cannot_escape_its_limit_by_sending_its_own_forwarded_header(client, settings):
    settings.TRUSTED_PROXY_COUNT = 1
    settings.ACTIVATION_RATE_PER_ADDRESS = 2
    statuses = [_malformed_activation(client, f"192.0.2.{n}, 198.51.100.1").status_code for n in range(3)]
    assert statuses == [400, 400, 429], "only the address the trusted proxy saw counts"


@pytest.mark.django_db
def test_rate_limit_counters_live_under_the_cache_key_prefix():
    limit = RateLimit("test-scope", limit=1)
    count_attempt((limit, "subject"))
    keys = [key.decode() for key in redis_client().scan_iter(match="*test-scope*")]
    assert keys
    assert all(key.startswith(f"{cache.key_prefix}:") for key in keys)


@pytest.mark.django_db
def test_two_deployments_sharing_one_redis_do_not_share_counters(settings):
    limit = RateLimit("shared-redis", limit=1)
    count_attempt((limit, "203.0.113.7"))
    with pytest.raises(RateLimitExceeded):
        count_attempt((limit, "203.0.113.7"))
    other = {"default": {**settings.CACHES["default"], "KEY_PREFIX": f"{cache.key_prefix}-other"}}
    with override_settings(CACHES=other):
        count_attempt((limit, "203.0.113.7"))  # its own first attempt: allowed
    cache.clear()


def _sign_in(email, password, address="203.0.113.7"):
    return Client().post(reverse("login"), {"username": email, "password": password}, REMOTE_ADDR=address)


@pytest.mark.django_db(transaction=True)
def test_parallel_wrong_passwords_for_one_account_are_checked_no_more_than_the_limit(settings):
    """A slow password hash keeps the attempts in flight together: each must be counted before it is checked."""
    settings.SIGN_IN_FAILURE_LIMIT_PER_ACCOUNT = 5
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.PBKDF2PasswordHasher"]
    user = UserFactory()
    start = threading.Barrier(12)

    def guess(attempt):
        start.wait()
        try:
            return _sign_in(user.email, f"wrong-{attempt}", address=f"198.51.100.{attempt}").text
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=12) as pool:
        pages = list(pool.map(guess, range(12)))
    checked = sum("Please enter a correct" in page for page in pages)
    paused = sum("Too many failed sign-ins for this account" in page for page in pages)
    assert (checked, paused) == (5, 7)


@pytest.mark.django_db
def test_colleagues_signing_in_from_one_office_address_do_not_pause_it(settings):
    settings.SIGN_IN_FAILURE_LIMIT_PER_ADDRESS = 3
    colleagues = UserFactory.create_batch(6)
    for colleague in colleagues:
        assert _sign_in(colleague.email, PASSWORD, address="192.0.2.80")["Location"] == reverse("home")


@pytest.mark.django_db
def test_wrong_passwords_still_pause_an_address_whose_other_sign_ins_succeed(settings):
    settings.SIGN_IN_FAILURE_LIMIT_PER_ADDRESS = 3
    guesser, colleague = UserFactory(), UserFactory()
    for _ in range(2):
        _sign_in(guesser.email, "wrong", address="192.0.2.81")
        assert _sign_in(colleague.email, PASSWORD, address="192.0.2.81").status_code == 302
    _sign_in(guesser.email, "wrong", address="192.0.2.81")
    assert "for your network address" in _sign_in(colleague.email, PASSWORD, address="192.0.2.81").text


@pytest.mark.django_db
def test_an_empty_password_does_not_clear_the_accounts_count(settings):
    settings.SIGN_IN_FAILURE_LIMIT_PER_ACCOUNT = 2
    user = UserFactory()
    for _ in range(2):
        _sign_in(user.email, "wrong", address="192.0.2.82")
    _sign_in(user.email, "", address="192.0.2.82")
    assert "for this account" in _sign_in(user.email, PASSWORD, address="192.0.2.82").text


@pytest.mark.django_db
def test_sign_in_is_refused_not_allowed_while_the_counters_are_unreachable(counters_unreachable):
    user = UserFactory()
    response = _sign_in(user.email, PASSWORD)
    assert response.status_code == 200
    assert "Signing in is unavailable for a moment" in response.text


@pytest.mark.django_db
def test_claims_are_refused_while_the_counters_are_unreachable(counters_unreachable, space, owner, device_model):
    identity = ApprovedIdentityFactory(device_model=device_model)
    with pytest.raises(ClaimingUnavailable):
        claim_device(space=space, device_model=device_model, identifiers=identity.identifiers, name="X", actor=owner)


@pytest.mark.django_db
def test_activations_are_accepted_while_the_counters_are_unreachable(client, counters_unreachable):
    identity = ApprovedIdentityFactory()
    body = {
        "vendor": identity.device_model.vendor.slug,
        "model": identity.device_model.slug,
        "identifiers": identity.identifiers,
        "public_key": "A" * 43,
    }
    response = client.post(ACTIVATIONS, json.dumps(body), content_type="application/json")
    assert response.status_code in (200, 202)


@pytest.mark.django_db
def test_claim_code_guesses_are_refused_not_let_through_while_the_counters_are_unreachable(
    client, counters_unreachable
):
    identity = ApprovedIdentityFactory(device_model__claim_code=True)
    body = {
        "vendor": identity.device_model.vendor.slug,
        "model": identity.device_model.slug,
        "identifiers": identity.identifiers,
        "public_key": "A" * 43,
        "claim_code": "82948164301",
    }
    response = client.post(ACTIVATIONS, json.dumps(body), content_type="application/json")
    assert response.status_code == 503, "an uncounted claim code is the guess the limit exists to stop"
    assert response["Retry-After"].isdigit()
    assert response.json()["error"]["code"] == "unavailable"
    assert not ActivationOperation.objects.exists()


@pytest.fixture
def database_cache_without_redis(settings):
    """The embedded default's counters: the database cache, no Redis, a default timeout shorter than the window."""
    redis_client.cache_clear()
    settings.REDIS_URL = ""
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.db.DatabaseCache",
            "LOCATION": "rate_limit_test_cache",
            "TIMEOUT": 1,
        }
    }
    call_command("createcachetable", verbosity=0)
    yield
    redis_client.cache_clear()


@pytest.mark.django_db
def test_without_redis_a_window_outlasts_the_caches_default_timeout(database_cache_without_redis):
    limit = RateLimit("no-redis-window", limit=2, window=600)
    count_attempt((limit, "192.0.2.1"))
    count_attempt((limit, "192.0.2.1"))
    time.sleep(1.2)  # past the cache's one-second default timeout, well within the window
    with pytest.raises(RateLimitExceeded) as exceeded:
        count_attempt((limit, "192.0.2.1"))
    assert exceeded.value.retry_after <= 600
    count_attempt((limit, "192.0.2.2"))  # another subject has its own count


@pytest.mark.django_db
def test_without_redis_a_client_that_waits_for_retry_after_may_try_again(database_cache_without_redis):
    limit = RateLimit("no-redis-retry", limit=1, window=1)
    count_attempt((limit, "192.0.2.3"))
    try:
        count_attempt((limit, "192.0.2.3"))
        count_attempt((limit, "192.0.2.3"))
    except RateLimitExceeded as exceeded:
        time.sleep(exceeded.retry_after)
    count_attempt((limit, "192.0.2.3"))


@pytest.mark.django_db
def test_without_redis_a_correct_password_takes_its_attempt_back(database_cache_without_redis, settings):
    settings.SIGN_IN_FAILURE_LIMIT_PER_ADDRESS = 2
    for colleague in UserFactory.create_batch(4):
        assert _sign_in(colleague.email, PASSWORD, address="192.0.2.83").status_code == 302


@pytest.mark.parametrize("backend", ["redis", "database cache"])
@pytest.mark.django_db
def test_several_attempts_counted_at_once_pass_the_limit_together_and_are_taken_back_together(request, backend):
    """A file's failed rows count as that many attempts in one increment, and can be taken back as many."""
    if backend == "database cache":
        request.getfixturevalue("database_cache_without_redis")
    limit = RateLimit(f"several-{backend}", limit=5, window=600)
    count_attempt((limit, "subject"), times=5)
    with pytest.raises(RateLimitExceeded):
        count_attempt((limit, "subject"), times=1)
    take_back(limit, "subject", times=4)  # the refused one stayed counted: 6 - 4 = 2
    count_attempt((limit, "subject"), times=3)
    with pytest.raises(RateLimitExceeded):
        count_attempt((limit, "subject"))
    cache.clear()
