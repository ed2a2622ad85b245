"""Faults on the stack production runs: gunicorn with threads, a Celery worker and beat, on a
PostgreSQL cluster and a Redis server of the test's own, which the tests stop, restart and kill.

In the middle of a burst of 1,000 activations, (a) the worker is killed (kill -9) and Redis
restarted empty, (b) PostgreSQL is restarted (fast shutdown: every connection closed). Either way
every accepted activation ends assigned, none twice, devices are answered 202 or 503 (retry after
Retry-After) and nothing else, and a user signed in before the fault is still signed in. Each
burst prints its figures.
"""

import json
import threading
import time

import psycopg
import pytest
from django.urls import reverse

from bench.common import Browser

from .conftest import wait_for
from .fault_stack import (
    Portal,
    PrivatePostgres,
    activation_burst,
    django_environment,
    migrate,
    operations_state,
    private_redis_server,  # noqa: F401 - the `redis_server` fixture
    seed,
)

pytestmark = pytest.mark.fault

UNITS = 1000
# Mid-burst: the fault strikes once this many activations have been accepted.
FAULT_AFTER = 300
# The sweeper re-sends an operation left assigning 30 s after it was last sent, and beat runs it
# every 15 s: up to 45 s after the fault, plus the worker's restart and the drain.
ALL_ASSIGNED_WITHIN = 120


@pytest.fixture(scope="module")
def postgres():
    server = PrivatePostgres()
    yield server
    server.remove()


@pytest.fixture(scope="module")
def migrated_template(postgres):
    migrate(postgres.create_database("portal_template"))
    return "portal_template"


@pytest.fixture
def seeded(postgres, migrated_template, request):
    """A database of the test's own, from the migrated template: UNITS approved units and an owner
    who can sign in (fault_stack.seed), and its "database_url"."""
    database_url = postgres.create_database(request.node.name[:60], template=migrated_template)
    return seed(database_url, UNITS) | {"database_url": database_url}


@pytest.fixture
def portal(seeded, redis_server, tmp_path):
    running = Portal(django_environment(seeded["database_url"], redis_server.url()), tmp_path).start()
    yield running
    running.stop()


@pytest.fixture
def single_threaded_portal(seeded, redis_server, tmp_path):
    """gunicorn and a worker with one thread each (every request, every task meets the same kept
    connection), and no beat: nothing but the work itself runs it again."""
    running = Portal(django_environment(seeded["database_url"], redis_server.url()), tmp_path, workers=1, threads=1)
    running.start(celery=False)
    running.start_worker(concurrency=1)
    yield running
    running.stop()


def signed_in_owner(portal, seeded):
    browser = Browser(portal.port)
    deadline = time.monotonic() + 30
    while True:  # until gunicorn's workers have booted
        try:
            browser.sign_in(seeded["email"], seeded["password"])
            return browser
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def still_signed_in(browser, seeded):
    status, *_ = browser.request("GET", reverse("space-dashboard", args=[seeded["space"]]))
    return status == 200


def burst_with_fault(portal, seeded, fault):
    """Run the burst, strike `fault()` once FAULT_AFTER activations are accepted, then wait (bounded)
    until every accepted operation is assigned. Returns the burst's result, the database's counts,
    and the seconds from the fault until all were assigned."""
    accepted = threading.Event()
    outcome = {}

    def strike_once_enough_are_accepted(count):
        if count >= FAULT_AFTER:
            accepted.set()

    def burst():
        outcome["result"] = activation_burst(
            portal.url, seeded["units"], concurrency=48, on_accepted=strike_once_enough_are_accepted
        )

    devices = threading.Thread(target=burst)
    devices.start()
    assert accepted.wait(timeout=120), "the burst never got going"
    struck_at = time.monotonic()
    fault()
    devices.join()
    result = outcome["result"]
    deadline = time.monotonic() + ALL_ASSIGNED_WITHIN
    while True:
        state = operations_state(seeded["database_url"], result.operations)
        if state["accepted operations assigned"] == len(result.operations) or time.monotonic() > deadline:
            return result, state, time.monotonic() - struck_at
        time.sleep(0.5)


def report(label, result, state, seconds):
    answers = ", ".join(f"{method} {status}: {count}" for (method, status), count in sorted(result.answers.items()))
    print(
        f"\n{label}: {len(result.operations)} of {UNITS} activations accepted, {result.unavailable} answers 503"
        f" ({answers}); every accepted one assigned {seconds:.1f} s after the fault (burst {result.seconds:.1f} s);"
        f" device failures: {dict(result.failures) or 'none'}; database: {state}"
    )


def assert_nothing_lost_or_doubled(result, state):
    assert set(result.answers) <= {("POST", 202), ("POST", 503), ("GET", 200), ("GET", 503)}
    assert result.failures == {}
    assert len(result.operations) == UNITS
    assert state["accepted operations assigned"] == UNITS
    assert state["operations not assigned"] == 0
    assert state["devices activated"] == state["activated events"] == UNITS
    assert state["devices with more than one event"] == 0


def test_a_burst_survives_the_worker_killed_and_redis_restarted_empty(portal, redis_server, seeded):
    browser = signed_in_owner(portal, seeded)

    def kill_the_worker_and_restart_redis_empty():
        portal.kill_worker()
        redis_server.restart_empty()
        portal.start_worker()

    result, state, seconds = burst_with_fault(portal, seeded, kill_the_worker_and_restart_redis_empty)
    report("Worker killed, Redis restarted empty", result, state, seconds)
    assert_nothing_lost_or_doubled(result, state)
    assert still_signed_in(browser, seeded), "the session outlived Redis's restart"


def test_a_burst_survives_a_postgresql_restart(portal, postgres, seeded):
    browser = signed_in_owner(portal, seeded)
    result, state, seconds = burst_with_fault(portal, seeded, postgres.restart)
    report("PostgreSQL restarted", result, state, seconds)
    assert_nothing_lost_or_doubled(result, state)
    assert still_signed_in(browser, seeded), "the session outlived PostgreSQL's restart"


def test_while_postgresql_is_down_devices_get_503_json_and_pages_503_with_retry_after(
    postgres, single_threaded_portal, seeded
):
    browser = signed_in_owner(single_threaded_portal, seeded)
    dashboard = reverse("space-dashboard", args=[seeded["space"]])
    operation = "/api/v1/activations/7b0c9d2e-3f4a-4b5c-8d6e-9f0a1b2c3d4e"
    postgres.stop()
    try:
        status, headers, body, _ = browser.request("GET", operation)
        assert (status, headers["Content-Type"]) == (503, "application/json")
        assert json.loads(body)["error"]["code"] == "unavailable"
        assert int(headers["Retry-After"]) > 0
        status, headers, body, _ = browser.request("GET", dashboard)
        assert (status, headers["Content-Type"]) == (503, "text/html; charset=utf-8")
        assert int(headers["Retry-After"]) > 0
    finally:
        postgres.start()
    # Behind PgBouncer the first request after PostgreSQL is back may still be told to retry: the
    # pooler refuses clients until its next attempt at a server connection succeeds.
    wait_for(lambda: browser.request("GET", operation)[0] != 503, timeout=10)
    assert browser.request("GET", operation)[0] == 404
    assert browser.request("GET", dashboard)[0] == 200


def test_after_a_postgresql_restart_the_kept_connections_of_gunicorn_and_the_worker_do_their_next_work(
    postgres, single_threaded_portal, seeded
):
    """An invitation: gunicorn's thread creates it, the worker's thread e-mails it. That task has
    no sweeper behind it: had it failed on its closed connection, the e-mail was never sent."""
    browser = signed_in_owner(single_threaded_portal, seeded)
    members = reverse("members", args=[seeded["organization"]])
    for number, restart_first in enumerate([False, True]):
        if restart_first:
            wait_for(lambda: invitations_sent(seeded["database_url"]) == 1, timeout=30)
            postgres.restart()
        status, headers, *_ = browser.request(
            "POST", members, {"email": f"colleague{number}@example.test", "role": "viewer"}
        )
        assert (status, headers["Location"]) == (302, members)
    wait_for(lambda: invitations_sent(seeded["database_url"]) == 2, timeout=30)


def invitations_sent(database_url):
    with psycopg.connect(database_url) as db:
        return db.execute("SELECT count(*) FROM accounts_invitation WHERE email_sent_at IS NOT NULL").fetchone()[0]
