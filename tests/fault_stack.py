"""The production stack for fault tests, on servers of their own that a test may restart or silence.

A private PostgreSQL cluster (initdb, pg_ctl) and a private redis-server on free ports under a
temporary directory, never the machine's shared ones; a socket that accepts and never answers; the
portal's processes as production runs them (gunicorn with threads, a Celery worker and beat, from
bench/common.py); and a burst of devices activating over HTTP that counts every answer.

`python -m tests.fault_stack seed N` (with DATABASE_URL set) approves N units with the factories
and creates an owner who can sign in; it prints them as JSON.
"""

import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest

from bench.common import (
    ROOT,
    free_port,
    start_celery_beat,
    start_celery_worker,
    start_gunicorn,
    stop_processes,
    through_pgbouncer,
)
from bin.services import as_postgres
from devices.simulator import ActivationFailed, HttpClient, SimulatedDevice

PASSWORD_FOR_SEEDED_OWNER = "fault-owner-pass-2026"


class PrivatePostgres:
    """A PostgreSQL cluster of our own in a temporary directory, on a free port (without fsync:
    nothing in it must outlive the tests). `remove()` stops it and deletes the directory. With
    `standby_of` (another PrivatePostgres), a streaming replica of it: pg_basebackup -R copies the
    primary and configures the standby to follow it."""

    def __init__(self, standby_of=None):
        initdb = (sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb")) or [shutil.which("initdb")])[-1]
        if initdb is None:
            raise RuntimeError("The fault tests start PostgreSQL servers of their own: apt-get install -y postgresql")
        self.bindir = Path(initdb).parent
        # Directly under the system's temporary directory: the postgres user cannot enter pytest's.
        self.directory = Path(tempfile.mkdtemp(prefix="portal-fault-postgres-"))
        self.data = self.directory / "data"
        self.port = free_port()
        if os.geteuid() == 0:
            shutil.chown(self.directory, "postgres", "postgres")
        if standby_of is None:
            self._run("initdb", "-D", self.data, "-U", "postgres", "--auth=trust", "--no-sync")
        else:
            source = ("-h", "127.0.0.1", "-p", standby_of.port, "-U", "postgres")
            self._run("pg_basebackup", "-D", self.data, *source, "-X", "stream", "-R", "--no-sync")
        self.start()

    def _run(self, program, *args):
        subprocess.run(as_postgres([str(self.bindir / program), *map(str, args)]), check=True, capture_output=True)

    def _pg_ctl(self, *args):
        # The server log goes to a file: pg_ctl's own output would stay open in the server it starts.
        self._run("pg_ctl", "-D", self.data, "-l", self.directory / "server.log", "-w", *args)

    def start(self):
        options = f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._pg_ctl("-o", options, "start")

    def restart(self):
        """What an operator's restart does: every connection is closed (fast shutdown), then the server is back."""
        self._pg_ctl("-m", "fast", "restart")

    def stop(self):
        self._pg_ctl("-m", "fast", "stop")

    def remove(self):
        self._pg_ctl("-m", "immediate", "stop")
        shutil.rmtree(self.directory)

    def url(self, database="postgres"):
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name, template=None):
        with psycopg.connect(self.url(), autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
        return self.url(name)


class PrivateRedis:
    """A redis-server of our own on a free port, keeping nothing on disk."""

    def __init__(self, directory):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.process = None
        self.start()

    def start(self):
        if not shutil.which("redis-server"):
            raise RuntimeError("The fault tests start Redis servers of their own: apt-get install -y redis-server")
        command = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly"]
        log = open(self.directory / "redis.log", "a")  # noqa: SIM115 - the server writes to it after we return
        with log:
            self.process = subprocess.Popen(
                [*command, "no", "--dir", str(self.directory)], stdout=log, stderr=subprocess.STDOUT
            )
        _wait_until_listening(self.port, self.process)

    def stop(self):
        """Gone at once, as when the server is killed: clients see their connections refused."""
        self.process.kill()
        self.process.wait()

    def pause(self):
        """SIGSTOP: the server keeps its connections and its data but answers nothing (a hung Redis)."""
        self.process.send_signal(signal.SIGSTOP)

    def resume(self):
        self.process.send_signal(signal.SIGCONT)

    def restart_empty(self):
        """Kill the server and start a fresh one on the same port: everything it held is lost."""
        self.stop()
        self.start()

    def url(self, db=0):
        return f"redis://127.0.0.1:{self.port}/{db}"


@pytest.fixture(name="redis_server")
def private_redis_server(tmp_path):
    """`redis_server`: a private Redis for one test (the fault tests import this fixture)."""
    server = PrivateRedis(tmp_path / "redis")
    yield server
    server.stop()


def _wait_until_listening(port, process, seconds=10):
    deadline = time.monotonic() + seconds
    while True:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"nothing listens on port {port}")
        time.sleep(0.05)


class SilentServer:
    """A socket that accepts connections and never answers: a Redis that stopped answering but
    did not close its connections (a hung server, a dropped network path)."""

    def __init__(self):
        self.listener = socket.create_server(("127.0.0.1", 0), backlog=128)
        self.port = self.listener.getsockname()[1]
        self.accepted = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:  # closed
                return
            self.accepted.append(connection)

    def url(self, db=0):
        return f"redis://127.0.0.1:{self.port}/{db}"

    def close(self):
        self.listener.close()
        for connection in self.accepted:
            connection.close()


def django_environment(database_url, redis_url):
    """What the portal's processes run with: the test settings on the given servers, tasks sent
    through the broker to a worker (not run in-process), one activation burst's address unlimited."""
    return os.environ | {
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "CELERY_TASK_ALWAYS_EAGER": "False",
        "CELERY_QUEUE": f"fault-{uuid.uuid4().hex[:8]}",
        "DJANGO_LOG_LEVEL": "WARNING",
        "ACTIVATION_RATE_PER_ADDRESS": "1000000",
    }


def migrate(database_url):
    env = django_environment(database_url, "redis://127.0.0.1:1/0")
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)


def seed(database_url, units):
    """Approve `units` units and create an owner of an organization with a space; returns
    {"units", "email", "password", "organization", "space"} (the codes of the organization and space)."""
    env = django_environment(database_url, "redis://127.0.0.1:1/0")
    command = [sys.executable, "-m", "tests.fault_stack", "seed", str(units)]
    return json.loads(subprocess.run(command, cwd=ROOT, env=env, check=True, capture_output=True, text=True).stdout)


@dataclass
class Portal:
    """gunicorn, and the Celery worker and beat when asked for, on one database and one Redis."""

    env: dict
    directory: Path
    workers: int = 2
    threads: int = 8
    port: int = field(default_factory=free_port)
    worker: subprocess.Popen | None = None
    processes: list = field(default_factory=list)

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def __post_init__(self):
        # Behind a transaction pooler as the rest of the suite is (bin/test), with a PgBouncer of
        # its own in front of this stack's PostgreSQL.
        if os.environ.get("DATABASE_POOLER") == "transaction":
            self.env = through_pgbouncer(self.env)

    def start(self, *, celery=True):
        self.processes.append(
            start_gunicorn(
                self.port, self.env, workers=self.workers, threads=self.threads, log=self.directory / "gunicorn.log"
            )
        )
        if celery:
            self.start_worker()
            beat = start_celery_beat(
                self.env, schedule_file=self.directory / "beat-schedule", log=self.directory / "beat.log"
            )
            self.processes.append(beat)
        return self

    def start_worker(self, concurrency=4):
        self.worker = start_celery_worker(self.env, concurrency=concurrency, log=self.directory / "worker.log")
        self.processes.append(self.worker)

    def kill_worker(self):
        """kill -9: the worker loses what it had reserved and the batch it was in the middle of."""
        self.worker.kill()
        self.worker.wait()

    def stop(self):
        stop_processes(self.processes)


@dataclass
class BurstResult:
    """What the devices of a burst were answered: `answers` counts (method, status); `operations`
    holds the id of every accepted (202) activation; `activated` counts the devices that derived their key."""

    answers: Counter = field(default_factory=Counter)
    operations: list = field(default_factory=list, repr=False)
    activated: int = 0
    failures: Counter = field(default_factory=Counter)
    seconds: float = 0.0

    @property
    def unavailable(self):
        return sum(count for (_, status), count in self.answers.items() if status == 503)


class _CountingClient(HttpClient):
    """The simulator's HTTP client, counting every answer into a BurstResult."""

    def __init__(self, url, result, on_accepted):
        super().__init__(url)
        self.result, self.on_accepted, self.lock = result, on_accepted, threading.Lock()

    def request(self, method, path, body=None, headers=None):
        response = super().request(method, path, body, headers)
        with self.lock:
            self.result.answers[method, response.status] += 1
            if method == "POST" and response.status == 202:
                self.result.operations.append(response.body["operation_id"])
                self.on_accepted(len(self.result.operations))
        return response


def activation_burst(url, units, *, concurrency, on_accepted=lambda count: None):
    """Every unit activates over HTTP as a device does (devices/simulator.py: POST, then poll the
    operation, retrying a 503 after its Retry-After, and derive the key), `concurrency` at a time.
    `on_accepted(count)` is called after each accepted request."""
    result = BurstResult()
    client = _CountingClient(url, result, on_accepted)

    def run(unit):
        try:
            SimulatedDevice(unit).activate(client, wait=None, deadline_seconds=240)
        except (ActivationFailed, OSError, ValueError) as failure:
            with client.lock:
                result.failures[f"{type(failure).__name__}: {failure}"[:200]] += 1
        else:
            with client.lock:
                result.activated += 1

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        list(pool.map(run, units))
    result.seconds = time.monotonic() - started
    return result


def operations_state(database_url, operation_ids):
    """Of the given operations, how many are assigned; of all devices, how many activated, with how
    many 'activated' events, and how many have more than one."""
    with psycopg.connect(database_url) as connection:

        def one(sql, params=()):
            return connection.execute(sql, params).fetchone()[0]

        return {
            "accepted operations assigned": one(
                "SELECT count(*) FROM devices_activationoperation WHERE status = 'assigned' AND id = ANY(%s)",
                [[uuid.UUID(value) for value in operation_ids]],
            ),
            "operations not assigned": one(
                "SELECT count(*) FROM devices_activationoperation WHERE status <> 'assigned'"
            ),
            "devices activated": one("SELECT count(*) FROM devices_device WHERE activated_at IS NOT NULL"),
            "activated events": one("SELECT count(*) FROM devices_deviceevent WHERE kind = 'activated'"),
            "devices with more than one event": one(
                "SELECT count(*) FROM (SELECT device_id FROM devices_deviceevent WHERE kind = 'activated'"
                " GROUP BY device_id HAVING count(*) > 1) AS doubled"
            ),
        }


def _seed(count):
    import django

    django.setup()
    from accounts.models import Role
    from tests.factories import (
        ApprovedIdentityFactory,
        DeviceModelFactory,
        MembershipFactory,
        OrganizationFactory,
        SpaceFactory,
        UserFactory,
    )
    from vendors.models import ApprovedIdentity

    model = DeviceModelFactory(vendor__slug="fault", slug="unit")
    identities = ApprovedIdentity.objects.bulk_create(ApprovedIdentityFactory.build_batch(count, device_model=model))
    organization = OrganizationFactory(vendors=[model.vendor])
    space = SpaceFactory(organization=organization)
    owner = UserFactory(password=PASSWORD_FOR_SEEDED_OWNER)
    MembershipFactory(user=owner, organization=organization, role=Role.OWNER)
    units = [
        {
            "vendor": "fault",
            "model": "unit",
            "identifiers": {"serial_number": unit.identifier_1, "mac_address": unit.identifier_2},
        }
        for unit in identities
    ]
    owner_and_places = {"email": owner.email, "organization": str(organization.code), "space": str(space.code)}
    print(json.dumps({"units": units, "password": PASSWORD_FOR_SEEDED_OWNER} | owner_and_places))


if __name__ == "__main__" and sys.argv[1:2] == ["seed"]:
    _seed(int(sys.argv[2]))
