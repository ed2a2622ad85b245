"""Shared fixtures: an organization with one member per role, an outsider, a real Celery
worker process, real headless Chromium, and a fleet for the device API tests."""

import contextlib
import os
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from django.apps import apps
from django.conf import settings as django_settings
from django.core.cache import cache
from django.db import connection, connections

from accounts.models import Role
from config.celery_app import app as celery_app
from config.celery_queues import task_routes
from devices import heartbeat_intake
from devices.claims import claim_device
from devices.commands import deliver_pending_commands, report_command_result, send_command
from devices.simulator import SimulatedDevice
from portal.redis import redis_client, redis_key
from vendors.claim_codes import hash_claim_code
from vendors.models import ApprovedIdentity

from .factories import (
    ApprovedIdentityFactory,
    ClaimedDeviceFactory,
    DeviceModelFactory,
    MembershipFactory,
    OrganizationFactory,
    ProductionBatchFactory,
    SpaceFactory,
    UserFactory,
    attested_unit,
)

# Playwright's sync API runs an event loop in the test thread; Django's ORM is still used
# synchronously there (by the tests and the live server), which is safe in tests.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def release_pooled_connections(database):
    """Behind PgBouncer (DATABASE_POOLER), make it close its server connections to `database`, which
    PostgreSQL counts as sessions: DROP DATABASE refuses a database with sessions. KILL drops them
    (and pauses the database), RESUME lets new clients in again."""
    if django_settings.DATABASE_POOLER != "transaction":
        return
    db = connection.settings_dict
    admin_url = f"postgres://{db['USER']}@{db['HOST']}:{db['PORT'] or 5432}/pgbouncer"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f"KILL {database}")
        admin.execute(f"RESUME {database}")


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings):
    """pytest-django's, then the pooler lets go of an earlier run's test database, which
    `--create-db` drops before creating it again."""
    release_pooled_connections(connection.settings_dict["TEST"]["NAME"])


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):
    """pytest-django's, and before it drops the test database (unless kept) the pooler lets go of it."""
    yield
    with django_db_blocker.unblock():
        connections.close_all()
        release_pooled_connections(connection.settings_dict["NAME"])


@pytest.fixture
def device_model(db):
    return DeviceModelFactory()


# A well-formed claim code (1234567890 and its Verhoeff check digit), and a camera model of the
# same vendor as `device_model` claimed by serial number + claim code, with one unit.
CAMERA_CODE = "12345678902"


@pytest.fixture(autouse=True)
def empty_heartbeat_stream():
    """Heartbeats a test appended to the intake stream and never wrote would wait for the next test's
    writer and hold its connectivity sweep back (heartbeat_intake.written_until): every test starts
    without them. The stream lives in Redis, which outlives each test's transaction."""
    redis_client().delete(redis_key(heartbeat_intake.STREAM))


@pytest.fixture
def fresh_throttle():
    """Claim-attempt counters start at zero: they live in Redis, which outlives each test's transaction."""
    cache.clear()


@pytest.fixture
def counters_unreachable(settings):
    """The raw Redis client of the rate limits points at a port where nothing listens, as when Redis is down."""
    redis_client.cache_clear()
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    yield
    redis_client.cache_clear()


@pytest.fixture
def camera(device_model):
    return DeviceModelFactory(vendor=device_model.vendor, name="Acme Cam 1", slug="cam-1", claim_code=True)


@pytest.fixture
def unit(camera):
    return ApprovedIdentityFactory(device_model=camera, identifier_1="AC1-260001", claim_code=CAMERA_CODE)


@pytest.fixture
def organization(db, device_model):
    return OrganizationFactory(vendors=[device_model.vendor])


@pytest.fixture
def space(organization):
    return SpaceFactory(organization=organization)


def _member(organization, role):
    return MembershipFactory(organization=organization, role=role).user


@pytest.fixture
def owner(organization):
    return _member(organization, Role.OWNER)


@pytest.fixture
def admin_member(organization):
    return _member(organization, Role.ADMIN)


@pytest.fixture
def operator(organization):
    return _member(organization, Role.OPERATOR)


@pytest.fixture
def viewer(organization):
    return _member(organization, Role.VIEWER)


@pytest.fixture
def outsider(db, device_model):
    """Owner of another organization, connected to the same vendor."""
    other = OrganizationFactory(vendors=[device_model.vendor])
    SpaceFactory(organization=other)
    return _member(other, Role.OWNER)


@pytest.fixture
def user_without_organization(db):
    return UserFactory()


def use_task_routes(routes):
    """Route this process's tasks by `routes` from now on: Celery keeps the router it first built."""
    celery_app.conf.task_routes = routes
    celery_app.amqp.flush_routes()
    celery_app.amqp.router = celery_app.amqp.Router()


@contextlib.contextmanager
def tasks_sent_to_queues_of(default_queue):
    """Send this process's tasks through the broker (not in-process) to the queues named after
    `default_queue`, as a worker started with CELERY_QUEUE=`default_queue` consumes them."""
    saved = (celery_app.conf.task_always_eager, celery_app.conf.task_default_queue, celery_app.conf.task_routes)
    celery_app.conf.task_always_eager = False
    celery_app.conf.task_default_queue = default_queue
    use_task_routes(task_routes(default_queue))
    try:
        yield
    finally:
        celery_app.conf.task_always_eager, celery_app.conf.task_default_queue, routes = saved
        use_task_routes(routes)


@pytest.fixture
def celery_worker_process(transactional_db):
    """A real `celery worker` process on the test database and Redis, consuming queues of its own
    (every queue of config/celery_queues.py, named after a CELERY_QUEUE of its own, as without -Q).

    Tasks sent while the fixture is active go through Redis to that process (not in-process).
    Needs `transactional_db`: the worker sees only committed rows.
    """
    queue = f"test-{uuid.uuid4().hex[:8]}"
    db = connection.settings_dict
    database_url = f"postgres://{db['USER']}:{db['PASSWORD'] or ''}@{db['HOST']}:{db['PORT'] or 5432}/{db['NAME']}"
    env = os.environ | {
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": database_url,
        "CELERY_QUEUE": queue,
        "CELERY_TASK_ALWAYS_EAGER": "False",
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            "--pool=solo",
            "--loglevel=INFO",
            "--without-gossip",
            "--without-mingle",
            "--include",
            "tests.worker_probe",
            "--hostname",
            f"{queue}@%h",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        with tasks_sent_to_queues_of(queue):
            deadline = time.monotonic() + 30
            while not celery_app.control.ping(destination=[f"{queue}@{os.uname().nodename}"], timeout=0.5):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"celery worker did not start:\n{process.stdout.read()}")
            yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        connection.close()


SNAPSHOT_APPS = {"auth", "admin", "accounts", "vendors", "spaces", "devices", "releaserequests", "webhooks"}
# Sessions change on every request (the time and place they were last used): not what a refused
# request must leave alone.
SNAPSHOT_SKIPPED = {"accounts.UserSession"}


def database_state():
    """Every row of the portal's tables, to prove a refused request changed nothing."""
    return {
        model._meta.label: list(model.objects.order_by("pk").values())
        for model in apps.get_models()
        if model._meta.app_label in SNAPSHOT_APPS and model._meta.label not in SNAPSHOT_SKIPPED
    }


def wait_for(predicate, timeout=20.0, interval=0.1):
    """Poll `predicate` until it returns a truthy value (returned) or `timeout` seconds pass (AssertionError)."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)


@pytest.fixture(scope="session")
def playwright_driver():
    """Playwright, started once: a process can drive only one at a time."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        yield playwright


def launch_chromium(playwright, *extra_flags):
    """Real headless Chromium (Debian's package), with `extra_flags` beside the usual ones."""
    return playwright.chromium.launch(executable_path="/usr/bin/chromium", args=[*CHROMIUM_FLAGS, *extra_flags])


@pytest.fixture(scope="session")
def browser(playwright_driver):
    """Real headless Chromium driven by Playwright."""
    chromium = launch_chromium(playwright_driver)
    yield chromium
    chromium.close()


@pytest.fixture
def page(browser, request):
    """A fresh browser page; screenshots it writes land in test-artifacts/<test name>/."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.artifacts = ARTIFACTS / request.node.name
    page.artifacts.mkdir(parents=True, exist_ok=True)
    yield page
    context.close()


# Vendor staff in the admin: two vendors, a staff user of the first, one model each.
@pytest.fixture
def acme_model(db):
    return DeviceModelFactory(vendor__name="Acme", vendor__slug="acme", slug="hub-2", name="Acme Hub 2")


@pytest.fixture
def globex_model(db):
    return DeviceModelFactory(vendor__name="Globex", vendor__slug="globex", slug="display-55", cloud_id=True)


@pytest.fixture
def acme_staff(acme_model):
    from .factories import VendorStaffFactory

    return VendorStaffFactory(vendor=acme_model.vendor).user


@pytest.fixture
def acme_admin_client(client, acme_staff):
    client.force_login(acme_staff)
    return client


@pytest.fixture
def shared_media_root(tmp_path, settings, monkeypatch):
    """Uploads in a temporary folder that a worker process started after this fixture reads too."""
    monkeypatch.setenv("DJANGO_MEDIA_ROOT", str(tmp_path))
    settings.MEDIA_ROOT = tmp_path
    return tmp_path


def database_url_for_subprocess():
    """The test database as a DATABASE_URL, for a `manage.py` run in a child process."""
    db = connection.settings_dict
    return f"postgres://{db['USER']}:{db['PASSWORD'] or ''}@{db['HOST']}:{db['PORT'] or 5432}/{db['NAME']}"


def connect_to_test_database(**options):
    """A psycopg connection of its own to the test database, without prepared statements (which a
    transaction pooler cannot keep: its next transaction may run in another server session)."""
    return psycopg.connect(database_url_for_subprocess(), prepare_threshold=None, **options)


@contextlib.contextmanager
def approved_meanwhile(device_model, serial, mac):
    """Approve a unit in another connection's transaction, left open until a statement of this test
    waits for one of its locks (20 s at the most), then committed: a concurrent import or admin
    edit. Yields an Event, set if that wait happened. Needs a transactional (committed) test."""
    other = connect_to_test_database()
    other.execute(
        "INSERT INTO vendors_approvedidentity (device_model_id, identifier_1, identifier_2, status, created_at)"
        " VALUES (%s, %s, %s, 'approved', now())",
        [device_model.pk, serial, mac],
    )
    waited = threading.Event()

    def commit_once_someone_waits():
        deadline = time.monotonic() + 20
        while not waited.is_set() and time.monotonic() < deadline:
            if other.execute("SELECT EXISTS (SELECT 1 FROM pg_locks WHERE NOT granted)").fetchone()[0]:
                waited.set()
            else:
                time.sleep(0.05)
        other.commit()

    committer = threading.Thread(target=commit_once_someone_waits)
    committer.start()
    try:
        yield waited
    finally:
        committer.join()
        other.close()


@dataclass
class Fleet:
    """What the device API tests aim at: a really activated device (its key sent as `authorization`)
    claimed by `owner`, its commands and activation operations, and `units` to activate, each an
    activation request without its public key."""

    authorization: dict
    device: Any
    owner: Any
    command_ids: list
    operation_ids: list
    units: list

    def queued_command(self):
        """The id of a new command waiting for the device."""
        return str(send_command(self.device, name="reboot", arguments={}, actor=self.owner).code)


CLAIM_CODE = "82948164301"


def _unit(identity, **extra):
    model = identity.device_model
    return {"vendor": model.vendor.slug, "model": model.slug, "identifiers": identity.identifiers, **extra}


def _without_public_key(device):
    """The device's signed activation request less its public key (which a replaced one no longer fits)."""
    return {name: value for name, value in device.activation_request().items() if name != "public_key"}


@pytest.fixture
def fleet(transactional_db, client, settings):
    """A device activated over the API and claimed, with commands finished, delivered and queued;
    another organization's command; activation operations assigned and failed; units approved
    (new and activated), revoked, attested (of a model that requires factory attestation) and with
    its claim code (of a model that requires one), and a real model with no unit (its identifiers
    are never approved).
    Transactional: activations run their task once the request's transaction commits."""
    settings.ACTIVATION_RATE_PER_ADDRESS = 10**6  # hundreds of requests from one address; limits are tested elsewhere
    settings.ACTIVATION_RATE_PER_IDENTITY = 10**6
    cache.clear()
    model = DeviceModelFactory()
    owner = MembershipFactory(organization=OrganizationFactory(vendors=[model.vendor]), role=Role.OWNER).user
    identity = ApprovedIdentityFactory(device_model=model)
    unit = SimulatedDevice(_unit(identity))
    activation = client.post("/api/v1/activations?wait=5", unit.activation_request(), content_type="application/json")
    unit.finish_activation(activation.json())
    device = claim_device(
        space=SpaceFactory(organization=owner.memberships.get().organization),
        device_model=model,
        identifiers=identity.identifiers,
        name="Hub",
        actor=owner,
    )
    finished = send_command(device, name="reboot", arguments={}, actor=owner)
    delivered = send_command(device, name="identify", arguments={"seconds": 5}, actor=owner)
    deliver_pending_commands(device)
    report_command_result(device, command_code=finished.code, succeeded=True, output="rebooted")
    queued = send_command(device, name="firmware_update", arguments={"url": "https://example.test/f.bin"}, actor=owner)
    theirs = send_command(ClaimedDeviceFactory(identity__device_model=model), name="reboot", arguments={}, actor=owner)
    revoked = ApprovedIdentityFactory(device_model=model, status=ApprovedIdentity.Status.REVOKED)
    refused = SimulatedDevice(_unit(revoked)).activation_request()
    failed = client.post("/api/v1/activations?wait=5", refused, content_type="application/json")
    batch = ProductionBatchFactory(device_model__vendor=model.vendor)
    coded = ApprovedIdentityFactory(
        device_model__vendor=model.vendor, device_model__claim_code=True, claim_code_hash=hash_claim_code(CLAIM_CODE)
    )
    return Fleet(
        authorization=unit.authorization,
        device=device,
        owner=owner,
        command_ids=[str(command.code) for command in (finished, delivered, queued, theirs)],
        operation_ids=[activation.json()["operation_id"], failed.json()["operation_id"]],
        units=[
            _unit(ApprovedIdentityFactory(device_model=model)),
            _unit(identity),
            _unit(revoked),
            _without_public_key(
                SimulatedDevice(attested_unit(batch, ApprovedIdentityFactory(device_model=batch.device_model)))
            ),
            _unit(coded, claim_code=CLAIM_CODE),
            _unit(ApprovedIdentityFactory(device_model=batch.device_model)),
            {"vendor": model.vendor.slug, "model": model.slug},
        ],
    )
