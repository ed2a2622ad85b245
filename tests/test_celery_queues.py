"""Each kind of work has its Celery queue: real workers on different queues keep an import backlog
from delaying an activation, and a worker started without -Q (as a one-worker deployment starts it)
consumes every queue."""

import os
import uuid

import pytest

from bench.common import start_celery_worker, stop_processes
from config.celery_app import app as celery_app
from config.celery_queues import TASKS_BY_KIND, queue_name
from devices.simulator import SimulatedDevice
from devices.tasks import process_activations_task, record_connectivity_changes
from portal.redis import redis_client
from vendors.tasks import sweep_imports

from .conftest import database_url_for_subprocess, tasks_sent_to_queues_of, wait_for
from .factories import ApprovedIdentityFactory

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def test_every_kind_of_work_is_routed_to_its_own_queue(settings):
    routes = settings.CELERY_TASK_ROUTES
    prefix = settings.CELERY_TASK_DEFAULT_QUEUE
    assert routes["devices.tasks.process_activations_task"]["queue"] == f"{prefix}-activations"
    assert routes["vendors.tasks.*"]["queue"] == f"{prefix}-imports"
    assert routes["alerts.tasks.*"]["queue"] == f"{prefix}-email"
    assert routes["webhooks.tasks.send_disabled_email"]["queue"] == f"{prefix}-email"
    assert routes["devices.tasks.record_connectivity_changes"]["queue"] == f"{prefix}-telemetry"
    consumed = {queue.name for queue in settings.CELERY_TASK_QUEUES}
    assert consumed == {prefix, *(queue_name(prefix, kind) for kind in TASKS_BY_KIND)}


class Workers:
    def __init__(self, logs):
        self.logs = logs
        self.prefix = f"test-{uuid.uuid4().hex[:8]}"
        self.env = os.environ | {
            "DJANGO_SETTINGS_MODULE": "config.settings.test",
            "DATABASE_URL": database_url_for_subprocess(),
            "CELERY_QUEUE": self.prefix,
            "CELERY_TASK_ALWAYS_EAGER": "False",
        }
        self.processes = []

    def start(self, *kinds):
        """A worker on the queues of `kinds`, or on every queue (no -Q) when none is given."""
        name = f"{self.prefix}-{len(self.processes)}"
        queues = ",".join(queue_name(self.prefix, kind) for kind in kinds) or None
        process = start_celery_worker(
            self.env,
            queue=queues,
            concurrency=2,
            prefetch=1,
            log=self.logs / f"{name}.log",
            extra=("--hostname", f"{name}@%h"),
        )
        self.processes.append(process)
        wait_for(lambda: celery_app.control.ping(destination=[f"{name}@{os.uname().nodename}"], timeout=0.5), 30)

    def waiting_in(self, kind):
        return redis_client().llen(queue_name(self.prefix, kind))


@pytest.fixture
def workers(tmp_path):
    running = Workers(tmp_path)
    try:
        with tasks_sent_to_queues_of(running.prefix):
            yield running
    finally:
        stop_processes(running.processes)


def test_an_activation_is_answered_while_imports_wait_in_their_own_queue(workers, client):
    workers.start("activations")
    for _ in range(50):  # a backlog of import work no worker of this deployment takes
        sweep_imports.delay()
    record_connectivity_changes.delay()
    device = SimulatedDevice(
        {
            "vendor": (identity := ApprovedIdentityFactory()).device_model.vendor.slug,
            "model": identity.device_model.slug,
            "identifiers": identity.identifiers,
        }
    )
    accepted = client.post("/api/v1/activations", device.activation_request(), content_type="application/json")
    assert accepted.status_code == 202
    operation = wait_for(lambda: (body := client.get(accepted["Location"]).json())["status"] != "assigning" and body)
    assert operation["status"] == "assigned"
    assert workers.waiting_in("imports") == 50
    assert workers.waiting_in("telemetry") == 1
    assert workers.waiting_in("activations") == 0


def test_a_worker_started_without_queues_consumes_every_queue(workers):
    for kind, task in [("imports", sweep_imports), ("telemetry", record_connectivity_changes)]:
        task.delay()
        assert workers.waiting_in(kind) == 1
    process_activations_task.delay()
    workers.start()
    wait_for(lambda: not any(workers.waiting_in(kind) for kind in ("imports", "telemetry", "activations")), 30)
