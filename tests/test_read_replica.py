"""The read-only pages on a real streaming replica (portal/replica.py).

A private primary (initdb) and a replica of it (pg_basebackup -R) streaming from it, the portal's
gunicorn on both (DATABASE_URL, DATABASE_REPLICA_URL). Which server answered a page is told by a
replica held stale: its replay is paused (pg_wal_replay_pause) while the primary renames a space,
so a page showing the old name was read from the replica and one showing the new name from the
primary.
"""

import glob
import shutil
from urllib.parse import urlencode

import psycopg
import pytest
from django.urls import reverse

from bench.common import Browser

from .conftest import wait_for
from .fault_stack import Portal, PrivatePostgres, PrivateRedis, django_environment, migrate, seed

pytestmark = pytest.mark.skipif(
    not (glob.glob("/usr/lib/postgresql/*/bin/pg_basebackup") or shutil.which("pg_basebackup")),
    reason="a streaming replica needs PostgreSQL's initdb and pg_basebackup (apt-get install -y postgresql)",
)

MAX_LAG = 5  # seconds: the stale page must come within it, under a loaded machine too
PIN_COOKIE = "primary_reads"


def fetch_one(url, sql, params=()):
    with psycopg.connect(url, autocommit=True) as connection:
        return connection.execute(sql, params).fetchone()[0]


@pytest.fixture(scope="module")
def servers():
    """The primary and its replica, once the replica streams; each "url" is of the portal's database."""
    primary = PrivatePostgres()
    replica = None
    try:
        url = primary.create_database("portal")
        migrate(url)
        replica = PrivatePostgres(standby_of=primary)
        wait_for(lambda: fetch_one(primary.url(), "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'"))
        yield {"primary": primary, "replica": replica, "url": url, "replica_url": replica.url("portal")}
    finally:
        for server in (replica, primary):
            if server is not None:
                server.remove()


@pytest.fixture(scope="module")
def portal(servers, tmp_path_factory):
    """gunicorn on the primary and the replica, and an owner of a space who can sign in."""
    directory = tmp_path_factory.mktemp("replica-portal")
    redis = PrivateRedis(directory / "redis")
    seeded = seed(servers["url"], 1)
    env = django_environment(servers["url"], redis.url()) | {
        "DATABASE_REPLICA_URL": servers["replica_url"],
        "DATABASE_REPLICA_MAX_LAG": str(MAX_LAG),
        "DATABASE_REPLICA_PIN_SECONDS": "60",
    }
    running = Portal(env, directory, workers=1, threads=4).start(celery=False)
    yield running, seeded
    running.stop()
    redis.stop()


@pytest.fixture
def browser(portal):
    running, seeded = portal
    client = Browser(running.port)
    client.sign_in(seeded["email"], seeded["password"])
    client.cookies.pop(PIN_COOKIE)  # a visit some time after signing in
    return client


def replica_caught_up(servers):
    position = fetch_one(servers["url"], "SELECT pg_current_wal_lsn()::text")
    return fetch_one(servers["replica_url"], "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", [position])


@pytest.fixture
def stale_replica(servers, portal):
    """The space named "Name the replica has" on both servers, then the replica's replay paused and
    the primary renaming it "Name only the primary has"; replay resumes afterwards."""
    _, seeded = portal
    rename = "UPDATE spaces_space SET name = %s WHERE code = %s RETURNING name"
    fetch_one(servers["url"], rename, ["Name the replica has", seeded["space"]])
    wait_for(lambda: replica_caught_up(servers))
    fetch_one(servers["replica_url"], "SELECT pg_wal_replay_pause()::text")
    wait_for(lambda: fetch_one(servers["replica_url"], "SELECT pg_get_wal_replay_pause_state() = 'paused'"))
    fetch_one(servers["url"], rename, ["Name only the primary has", seeded["space"]])
    yield seeded
    fetch_one(servers["replica_url"], "SELECT pg_wal_replay_resume()::text")
    wait_for(lambda: replica_caught_up(servers))


def space_name_on(url, space):
    return fetch_one(url, "SELECT name FROM spaces_space WHERE code = %s", [space])


def dashboard(browser, space):
    status, _, body, _ = browser.request("GET", reverse("space-dashboard", kwargs={"code": space}))
    assert status == 200
    return body.decode()


def test_a_dashboard_is_read_from_the_replica_and_a_rename_and_the_page_after_it_from_the_primary(
    servers, browser, stale_replica
):
    space = stale_replica["space"]

    assert "Name the replica has" in dashboard(browser, space)

    path = reverse("space-settings", kwargs={"code": space})
    browser.request("GET", path)
    status, headers, _, _ = browser.request("POST", path, {"name": "Renamed on the page"})
    assert status == 302
    assert PIN_COOKIE in browser.cookies
    assert headers["Location"] == reverse("space-dashboard", kwargs={"code": space})
    assert "Renamed on the page" in dashboard(browser, space)
    assert space_name_on(servers["url"], space) == "Renamed on the page"
    assert space_name_on(servers["replica_url"], space) == "Name the replica has"


def test_a_replica_lagging_more_than_the_limit_leaves_the_pages_to_the_primary(servers, browser, stale_replica):
    space = stale_replica["space"]

    wait_for(lambda: "Name only the primary has" in dashboard(browser, space), timeout=MAX_LAG + 15)

    assert space_name_on(servers["replica_url"], space) == "Name the replica has"
    assert PIN_COOKIE not in browser.cookies


def test_a_replica_that_stopped_leaves_the_pages_to_the_primary_without_an_error(servers, browser, portal):
    _, seeded = portal
    rename = "UPDATE spaces_space SET name = %s WHERE code = %s RETURNING name"
    fetch_one(servers["url"], rename, ["Before the replica stopped", seeded["space"]])
    wait_for(lambda: replica_caught_up(servers))
    assert "Before the replica stopped" in dashboard(browser, seeded["space"])

    servers["replica"].stop()
    try:
        fetch_one(servers["url"], rename, ["After it stopped", seeded["space"]])
        for _ in range(3):
            assert "After it stopped" in dashboard(browser, seeded["space"])
        search = reverse("organization-devices", kwargs={"code": seeded["organization"]}) + "?" + urlencode({"q": "x"})
        assert browser.request("GET", search)[0] == 200
    finally:
        servers["replica"].start()
