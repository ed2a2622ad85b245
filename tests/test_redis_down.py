"""With Redis stopped or silent, the portal answers: sessions come from PostgreSQL, pages render,
and what cannot be done safely without Redis is refused (503 with Retry-After), never a 500 or a hang.

The portal runs as production does (gunicorn with threads, tasks sent through the broker) on the
test database and a Redis server of the test's own, which the test stops, pauses, or replaces by
a socket that accepts connections and never answers.
"""

import time

import pytest
import redis
from django.core.cache import caches
from django.test import override_settings
from django.urls import reverse

from bench.common import Browser
from devices.simulator import HttpClient, SimulatedDevice

from . import url_registry
from .conftest import database_url_for_subprocess
from .factories import PASSWORD, ApprovedIdentityFactory, UserFactory
from .fault_stack import (
    Portal,
    SilentServer,
    django_environment,
    private_redis_server,  # noqa: F401 - the `redis_server` fixture
)
from .test_activation_worker import unit_of
from .test_tenant_isolation import world as tenant_world  # noqa: F401 - a fixture, see `world`

pytestmark = [pytest.mark.fault, pytest.mark.django_db(transaction=True)]

# A stopped Redis refuses at once; a silent one costs REDIS_SOCKET_TIMEOUT (2 s) per command tried.
# What these bounds catch is a request hanging on Redis; they are no speed goal.
STOPPED_WITHIN = 5
SILENT_WITHIN = 10


@pytest.fixture
def world(request):
    """The sample organization test_tenant_isolation walks the URL registry with."""
    return request.getfixturevalue("tenant_world")


def start_portal(redis_url, directory):
    """gunicorn on the test database and `redis_url` (cache, sessions, broker); no worker runs."""
    portal = Portal(django_environment(database_url_for_subprocess(), redis_url), directory, workers=1)
    portal.start(celery=False)
    answer(Browser(portal.port), "GET", "/api/v1/health", within=30)  # gunicorn's worker has booted
    return portal


@pytest.fixture
def portal(redis_server, tmp_path):
    running = start_portal(redis_server.url(), tmp_path)
    yield running
    running.stop()


def answer(browser, method, path, form=None, *, within):
    """(status, headers, body) of one request, which must not take `within` seconds or more."""
    started = time.monotonic()
    status, headers, body, _ = browser.request(method, path, form)
    assert time.monotonic() - started < within, f"{method} {path} took {within} s or more"
    return status, headers, body


def signed_in(portal, user):
    """A browser holding a session of `user`, opened (and cached) while Redis answered."""
    browser = Browser(portal.port)
    browser.request("GET", reverse("login"))
    status, *_ = browser.request("POST", reverse("login"), {"username": user.email, "password": PASSWORD})
    assert status == 302, "signed in while Redis was up"
    return browser


def opens_the_overview(browser, world, *, within=STOPPED_WITHIN):
    status, headers, body = answer(
        browser, "GET", reverse("organization-overview", args=[world.organization.code]), within=within
    )
    return status == 200 and world.organization.name.encode() in body


def _as_expected(page, status, location):
    """What a signed-in owner gets from a page when nothing is wrong (as test_tenant_isolation walks it)."""
    if page.kind in (url_registry.DEVICE_API, url_registry.ORGANIZATION_API):
        return status in (401, 405)  # a session is neither a device key nor an API token
    if page.kind == url_registry.PUBLIC:
        return status < 500
    return status in (200, 405) or (status == 302 and not location.startswith(reverse("login")))


def test_with_redis_stopped_every_page_answers_the_signed_in_owner(portal, redis_server, world):
    """GET, then POST an empty form to, every page but signing in and out: each answers as it
    would with Redis up (the session read from PostgreSQL), and no POST gets a 500."""
    browser = signed_in(portal, world.owner)
    redis_server.stop()
    wrong = []
    # Leaving the organization goes last: the owner is no member afterwards.
    pages = sorted(url_registry.PORTAL_PAGES.items(), key=lambda item: item[0] == "organization-leave")
    for name, page in pages:
        if name in ("login", "logout"):
            continue
        url = reverse(name, kwargs=page.kwargs(world))
        status, headers, _ = answer(browser, "GET", url, within=STOPPED_WITHIN)
        if not _as_expected(page, status, headers.get("Location", "")):
            wrong.append(f"GET {name}: {status} {headers.get('Location', '')}")
        status, headers, _ = answer(browser, "POST", url, {}, within=STOPPED_WITHIN)
        if status >= 500 or headers.get("Location", "").startswith(reverse("login")):
            wrong.append(f"POST {name}: {status} {headers.get('Location', '')}")
    assert wrong == [], "\n".join(wrong)


def test_with_redis_stopped_the_admin_answers_a_superuser(portal, redis_server, world):
    superuser = UserFactory(is_staff=True, is_superuser=True)
    browser = signed_in(portal, superuser)
    redis_server.stop()
    pages = [reverse("admin:index")] + [
        reverse(f"admin:{label.replace('.', '_')}_changelist") for label in sorted(url_registry.ADMIN_MODELS)
    ]
    answers = {page: answer(browser, "GET", page, within=STOPPED_WITHIN)[0] for page in pages}
    assert {page: status for page, status in answers.items() if status != 200} == {}


def test_a_session_survives_a_redis_restart(portal, redis_server, world):
    browser = signed_in(portal, world.owner)
    redis_server.restart_empty()
    assert opens_the_overview(browser, world)


def test_with_redis_stopped_sign_in_is_refused_not_allowed(portal, redis_server, world):
    """Failed sign-ins cannot be counted: a correct password must not open a session then either."""
    browser = Browser(portal.port)
    browser.request("GET", reverse("login"))
    redis_server.stop()
    owner = world.owner
    status, _, _ = answer(
        browser, "POST", reverse("login"), {"username": owner.email, "password": PASSWORD}, within=STOPPED_WITHIN
    )
    assert status in (200, 503), "refused: the form again, or try later"
    assert not opens_the_overview(browser, world)


def test_a_sign_out_while_redis_hangs_is_refused_rather_than_undone_when_redis_answers_again(
    portal, redis_server, world
):
    """Redis keeps a copy of the session. Signing out while that copy cannot be deleted would let
    the session work again once Redis answers, so sign-out is refused (503) until then."""
    browser = signed_in(portal, world.owner)
    redis_server.pause()
    status, headers, _ = answer(browser, "POST", reverse("logout"), {}, within=SILENT_WITHIN)
    redis_server.resume()
    assert status == 503
    assert int(headers["Retry-After"]) > 0
    assert opens_the_overview(browser, world), "still signed in, as the refusal said"

    session_cookie = browser.cookies["sessionid"]
    status, _, _ = answer(browser, "POST", reverse("logout"), {}, within=STOPPED_WITHIN)
    assert status == 302
    stolen = Browser(portal.port)
    stolen.cookies["sessionid"] = session_cookie
    assert not opens_the_overview(stolen, world), "the signed-out session is gone"


def test_with_redis_stopped_an_invitation_is_refused_until_it_can_be_sent(portal, redis_server, world):
    """The e-mail is a task sent through Redis: with Redis down the owner is told to try again
    (inviting again replaces the pending invitation), not shown a 500 or told it was sent."""
    browser = signed_in(portal, world.owner)
    members = reverse("members", args=[world.organization.code])
    invitation = {"email": "colleague@example.test", "role": "operator"}
    answer(browser, "GET", members, within=STOPPED_WITHIN)
    redis_server.stop()
    status, headers, _ = answer(browser, "POST", members, invitation, within=STOPPED_WITHIN)
    assert status == 503
    assert int(headers["Retry-After"]) > 0
    redis_server.start()
    status, headers, _ = answer(browser, "POST", members, invitation, within=STOPPED_WITHIN)
    assert (status, headers["Location"]) == (302, members)


@pytest.fixture
def silent_portal(tmp_path):
    """The portal on a Redis that accepts connections and never answers."""
    silent = SilentServer()
    portal = start_portal(silent.url(), tmp_path)
    yield portal
    portal.stop()
    silent.close()


def browser_of(portal, client, user):
    """A browser holding a session of `user` saved in PostgreSQL (the portal's Redis holds nothing)."""
    client.force_login(user)
    browser = Browser(portal.port)
    browser.cookies["sessionid"] = client.cookies["sessionid"].value
    return browser


def test_the_cache_gives_up_on_a_silent_redis_after_the_socket_timeout_not_the_clients_default(settings):
    """redis-py waits 5 s for an answer unless told; every page reading the cache would wait that long."""
    silent = SilentServer()
    try:
        with override_settings(CACHES={"default": settings.CACHES["default"] | {"LOCATION": silent.url()}}):
            started = time.monotonic()
            with pytest.raises(redis.TimeoutError):
                caches["default"].get("anything")
            waited = time.monotonic() - started
    finally:
        silent.close()
    assert waited < settings.REDIS_SOCKET_TIMEOUT + 2


def test_with_redis_silent_pages_answer_within_seconds(silent_portal, world, client):
    browser = browser_of(silent_portal, client, world.owner)
    assert opens_the_overview(browser, world, within=SILENT_WITHIN)
    device_page = reverse("device-detail", args=[world.device.code])
    assert answer(browser, "GET", device_page, within=SILENT_WITHIN)[0] == 200


def test_with_redis_silent_an_invitation_is_refused_within_seconds(silent_portal, world, client):
    """Its e-mail is a task for the broker, which is Redis: sending it gives up instead of hanging."""
    browser = browser_of(silent_portal, client, world.owner)
    members = reverse("members", args=[world.organization.code])
    answer(browser, "GET", members, within=SILENT_WITHIN)
    invitation = {"email": "colleague@example.test", "role": "operator"}
    status, headers, _ = answer(browser, "POST", members, invitation, within=SILENT_WITHIN)
    assert status == 503
    assert int(headers["Retry-After"]) > 0


def test_with_redis_silent_an_activation_is_accepted_within_seconds(silent_portal, world):
    device = SimulatedDevice(unit_of(ApprovedIdentityFactory(device_model=world.device.device_model)))
    request = device.activation_request()
    started = time.monotonic()
    response = HttpClient(silent_portal.url, timeout=60).request("POST", "/api/v1/activations", request)
    assert time.monotonic() - started < SILENT_WITHIN, "the activation request hung on Redis"
    assert response.status == 202
