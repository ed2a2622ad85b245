"""A real Celery worker process, fed through Redis, writes to PostgreSQL."""

import pytest
from django.db import transaction

from devices.models import Device

from .conftest import wait_for
from .factories import ClaimedDeviceFactory
from .worker_probe import rename_from_worker


@pytest.mark.worker
def test_real_worker_runs_a_task_sent_after_commit_and_its_effect_is_in_postgresql(celery_worker_process):
    device = ClaimedDeviceFactory(name="Before")
    with transaction.atomic():
        transaction.on_commit(lambda: rename_from_worker.delay(device.pk, "Renamed by the worker"))
    wait_for(lambda: Device.objects.get(pk=device.pk).name == "Renamed by the worker")
    assert device.events.get().details == {"to": "Renamed by the worker", "by": "worker"}
