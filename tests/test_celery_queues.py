"""Each kind of work has its Celery queue: real workers on different queues keep an import backlog
from delaying an activation, and a worker started without -Q (as a one-worker deployment starts it)
consumes every queue."""

import pytest

from config.celery_queues import TASKS_BY_KIND, queue_name
from devices.simulator import SimulatedDevice
from devices.tasks import process_activations_task, record_connectivity_changes
from vendors.tasks import sweep_imports

from .celery_workers import celery_workers
from .conftest import wait_for
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


@pytest.fixture
def workers(tmp_path):
    with celery_workers(tmp_path) as running:
        yield running


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
