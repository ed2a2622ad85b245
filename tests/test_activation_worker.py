"""Activation through a real Celery worker process on Redis, and recovery when the broker was down."""

import contextlib
import io
import json
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.core.management import CommandError, call_command
from django.test import override_settings
from django.utils import timezone

from config.celery_app import app as celery_app
from devices.activation_queue import BATCH_SIZE, resend_stuck_activations
from devices.models import ActivationOperation, Device, DeviceEvent, UsedAttestationSignature
from devices.simulator import SimulatedDevice, simulate
from portal.redis import redis_client

from .conftest import wait_for
from .factories import ApprovedIdentityFactory

pytestmark = pytest.mark.worker
DEMO_MODELS = ("hub-2", "cam-1", "display-55")


@pytest.fixture(autouse=True)
def fresh_rate_limits():
    cache.clear()


def unit_of(identity):
    return {
        "vendor": identity.device_model.vendor.slug,
        "model": identity.device_model.slug,
        "identifiers": identity.identifiers,
    }


@contextlib.contextmanager
def redis_down():
    """Point the web side's broker and Redis client at a port where nothing listens, as when Redis is down."""

    def reconnect(url):
        celery_app.conf.broker_url = url
        celery_app._pool = None
        celery_app.amqp._producer_pool = None
        redis_client.cache_clear()

    saved = celery_app.conf.broker_url
    with override_settings(REDIS_URL="redis://127.0.0.1:1/0"):
        reconnect("redis://127.0.0.1:1/0")
        try:
            yield
        finally:
            reconnect(saved)


@pytest.mark.parametrize("wait", [10, None], ids=["holding the request", "polling"])
def test_the_simulator_activates_units_over_http_through_a_real_worker(celery_worker_process, live_server, wait):
    identities = ApprovedIdentityFactory.create_batch(4)
    units = [unit_of(identity) for identity in identities]
    result = simulate(live_server.url, units, concurrency=4, heartbeats=2, wait=wait)
    assert result.failures == {}
    assert result.activated == 4
    devices = Device.objects.filter(identity__in=identities)
    assert devices.filter(status="registered").exclude(key_hash="").count() == 4
    assert DeviceEvent.objects.filter(kind=DeviceEvent.Kind.ACTIVATED, device__in=devices).count() == 4
    assert set(ActivationOperation.objects.values_list("status", flat=True)) == {"assigned"}


@override_settings(ACTIVATION_RATE_PER_ADDRESS=1000)
def test_a_burst_of_several_batches_activates_every_unit_once_through_a_real_worker(celery_worker_process, live_server):
    count = BATCH_SIZE * 2 + 20
    identities = ApprovedIdentityFactory.create_batch(count)
    result = simulate(live_server.url, [unit_of(identity) for identity in identities], concurrency=16, wait=10)
    assert result.failures == {}
    assert result.activated == count
    assert ActivationOperation.objects.filter(status="assigned").count() == count
    events = DeviceEvent.objects.filter(kind=DeviceEvent.Kind.ACTIVATED, device__identity__in=identities)
    assert events.count() == count
    assert events.values("device").distinct().count() == count


def test_a_device_that_polls_gets_its_key_from_a_real_worker(celery_worker_process, client):
    device = SimulatedDevice(unit_of(ApprovedIdentityFactory()))
    accepted = client.post("/api/v1/activations", device.activation_request(), content_type="application/json")
    assert accepted.status_code == 202
    operation = wait_for(lambda: (body := client.get(accepted["Location"]).json())["status"] != "assigning" and body)
    device.finish_activation(operation)
    response = client.post(
        "/api/v1/device/heartbeat", {"metrics": {}}, content_type="application/json", headers=device.authorization
    )
    assert response.status_code == 200


def test_with_redis_down_the_device_gets_202_and_the_sweeper_recovers_the_operation(
    celery_worker_process, client, caplog
):
    device = SimulatedDevice(unit_of(ApprovedIdentityFactory()))
    with redis_down():
        accepted = client.post("/api/v1/activations", device.activation_request(), content_type="application/json")
    assert accepted.status_code == 202
    assert "Could not ring the activation doorbell" in caplog.text
    assert "Rate limits are not counted" in caplog.text
    operation = ActivationOperation.objects.get()
    assert operation.status == "assigning"

    assert resend_stuck_activations() == 0, "not stuck yet: sent less than 30 s ago"
    later = timezone.now() + timedelta(seconds=31)
    assert resend_stuck_activations(now=later) == 1
    assert resend_stuck_activations(now=later) == 0, "rung once, not on every sweep"

    wait_for(lambda: ActivationOperation.objects.get(pk=operation.pk).status == "assigned")
    device.finish_activation(client.get(accepted["Location"]).json())
    assert Device.objects.get(code=device.device_id).events.count() == 1


def test_simulate_devices_activates_every_demo_model_through_a_real_worker(
    celery_worker_process, live_server, tmp_path
):
    """Serial + MAC units, units that send their claim code, and units that sign with their own key."""
    call_command("seed_demo", stdout=io.StringIO())
    listing = io.StringIO()
    call_command("seed_demo", "--list", stdout=listing)
    units = [json.loads(line) for line in listing.getvalue().splitlines()]
    chosen = [unit for model in DEMO_MODELS for unit in [u for u in units if u["model"] == model][:2]]
    units_file = tmp_path / "units.jsonl"
    units_file.write_text("".join(json.dumps(unit) + "\n" for unit in chosen))

    out = io.StringIO()
    call_command("simulate_devices", url=live_server.url, count=6, units=str(units_file), stdout=out)
    assert out.getvalue().startswith("activated 6 of 6"), out.getvalue()
    for model in DEMO_MODELS:
        assert Device.objects.filter(device_model__slug=model, activated_at__isnull=False).count() == 2
    assert UsedAttestationSignature.objects.count() == 2


def test_simulate_devices_reports_units_that_cannot_activate(celery_worker_process, live_server):
    call_command("seed_demo", stdout=io.StringIO())
    call_command("simulate_devices", url=live_server.url, count=1, stdout=io.StringIO())
    out = io.StringIO()
    with pytest.raises(CommandError, match="failed"):
        call_command("simulate_devices", url=live_server.url, count=1, stdout=out)
    assert "already_activated" in out.getvalue()
