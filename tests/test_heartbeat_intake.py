"""Batched heartbeat intake: heartbeats wait in a Redis stream until the writer stores them, once each,
under the claim they came with; a writer killed mid-batch loses nothing; Redis down writes directly."""

import json
import os
import signal
import time
from datetime import timedelta

import psycopg
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from devices import heartbeat_intake
from devices.actions import release_device, reset_device_key
from devices.claims import claim_device
from devices.heartbeat_intake import write_batch, write_buffered_heartbeats
from devices.models import Device, DeviceEvent, Heartbeat
from devices.tasks import write_buffered_heartbeats_task
from devices.telemetry import record_connectivity_changes, record_heartbeat
from portal.redis import redis_client, redis_key
from tests.racing import race

from .conftest import database_url_for_subprocess, wait_for
from .factories import ActivatedDeviceFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def empty_stream():
    """The stream outlives each test's transaction: start from an empty one (and its group)."""
    stream = redis_key(heartbeat_intake.STREAM)
    redis_client().delete(stream)
    redis_client().xgroup_create(stream, heartbeat_intake.GROUP, id="0", mkstream=True)


def _fleet(space, count):
    """`count` claimed, activated devices in `space`, online, of a model its organization may claim."""
    model = space.organization.connected_vendors.get().device_models.get()
    return [
        ActivatedDeviceFactory(space=space, identity__device_model=model, online=True, last_seen_at=timezone.now())
        for _ in range(count)
    ]


def _authenticated(device):
    return Device.objects.get(pk=device.pk)


def _pending():
    stream = redis_key(heartbeat_intake.STREAM)
    return redis_client().xpending(stream, heartbeat_intake.GROUP)["pending"]


def test_heartbeats_wait_in_the_stream_until_the_writer_stores_each_exactly_once(space):
    devices = _fleet(space, 5)
    for n in range(3):
        for device in devices:
            assert record_heartbeat(_authenticated(device), metrics={"cpu": n}) is not None
    assert not Heartbeat.objects.exists(), "the request only appends"

    assert write_buffered_heartbeats(batch=4) == 15
    assert Heartbeat.objects.filter(device__in=devices).count() == 15
    for device in devices:
        assert sorted(device.heartbeats.values_list("metrics__cpu", flat=True)) == [0, 1, 2]
    assert write_buffered_heartbeats() == 0, "acknowledged entries are gone"
    assert redis_client().xlen(redis_key(heartbeat_intake.STREAM)) == 0


def _one_heartbeat_arrives_while_writing(device, monkeypatch):
    """The writer's next batch, as it commits, sees `device` send a heartbeat (once)."""
    write_one_batch, arrivals = heartbeat_intake.write_batch, [device]

    def write_batch(rows):
        if arrivals:
            record_heartbeat(_authenticated(arrivals.pop()), metrics={"cpu": 2})
        return write_one_batch(rows)

    monkeypatch.setattr(heartbeat_intake, "write_batch", write_batch)


def test_a_writer_that_caught_up_leaves_what_arrives_meanwhile_to_its_next_run_as_one_batch(space, monkeypatch):
    first, late = _fleet(space, 2)
    record_heartbeat(_authenticated(first), metrics={"cpu": 1})
    _one_heartbeat_arrives_while_writing(late, monkeypatch)
    assert write_buffered_heartbeats(batch=4) == 1, "a partial batch means the stream was caught up"
    assert list(Heartbeat.objects.values_list("device", flat=True)) == [first.pk]
    assert write_buffered_heartbeats(batch=4) == 1
    assert late.heartbeats.count() == 1


def test_a_writer_with_a_pause_writes_what_arrived_meanwhile_and_returns_once_the_stream_is_empty(space, monkeypatch):
    first, late = _fleet(space, 2)
    record_heartbeat(_authenticated(first), metrics={"cpu": 1})
    _one_heartbeat_arrives_while_writing(late, monkeypatch)
    started = time.monotonic()
    assert write_buffered_heartbeats(batch=4, seconds=30, pause=0.05) == 2
    assert time.monotonic() - started < 10, "an empty read ends the run: nothing is flowing"
    assert sorted(Heartbeat.objects.values_list("device", flat=True)) == sorted([first.pk, late.pk])


def test_an_entry_no_request_wrote_is_dropped_and_holds_up_nothing(space):
    [device] = _fleet(space, 1)
    redis_client().xadd(redis_key(heartbeat_intake.STREAM), {"device": "not a number"})
    record_heartbeat(_authenticated(device), metrics={"cpu": 1})
    assert write_buffered_heartbeats() == 2
    assert device.heartbeats.count() == 1
    assert _pending() == 0


def test_a_batch_written_again_changes_nothing(space):
    """What a writer taking over a dead one's entries does when the dead one had committed them."""
    [device] = _fleet(space, 1)
    at = timezone.now()
    rows = [(device.pk, device.key_hash, device.claimed_at, at, json.dumps({"cpu": 1}), 2)]
    write_batch(rows)
    stored = Device.objects.get(pk=device.pk)
    write_batch(rows)
    assert device.heartbeats.count() == 1
    again = Device.objects.get(pk=device.pk)
    assert (again.last_seen_at, again.online, again.applied_config_version) == (at, True, 2)
    assert again.last_seen_at == stored.last_seen_at


def test_the_writer_marks_the_device_seen_and_back_online_once(space):
    device = ActivatedDeviceFactory(space=space, online=False, last_seen_at=timezone.now() - timedelta(days=1))
    record_heartbeat(_authenticated(device), metrics={}, config_version=0)
    record_heartbeat(_authenticated(device), metrics={}, config_version=4)
    assert not Device.objects.get(pk=device.pk).online, "not before the writer runs"

    write_buffered_heartbeats()

    stored = Device.objects.get(pk=device.pk)
    latest = device.heartbeats.order_by("-received_at").first()
    assert (stored.online, stored.last_seen_at, stored.applied_config_version) == (True, latest.received_at, 4)
    assert device.events.filter(kind=DeviceEvent.Kind.BACK_ONLINE).count() == 1


def test_a_later_batch_never_moves_last_seen_back(space):
    [device] = _fleet(space, 1)
    now = timezone.now()
    write_batch([(device.pk, device.key_hash, device.claimed_at, now, "{}", None)])
    write_batch([(device.pk, device.key_hash, device.claimed_at, now - timedelta(seconds=5), "{}", None)])
    assert Device.objects.get(pk=device.pk).last_seen_at == now
    assert device.heartbeats.count() == 2, "the late heartbeat is still kept for the chart"


def test_a_release_discards_the_devices_buffered_heartbeats(space, owner, outsider):
    [device] = _fleet(space, 1)
    record_heartbeat(_authenticated(device), metrics={"cpu": 1})
    release_device(Device.objects.get(pk=device.pk), actor=owner)
    again = claim_device(
        space=outsider.memberships.get().organization.spaces.first(),
        device_model=device.device_model,
        identifiers=device.identity.identifiers,
        name="Theirs now",
        actor=outsider,
    )

    write_buffered_heartbeats()

    assert not Heartbeat.objects.filter(device=device).exists()
    stored = Device.objects.get(pk=again.pk)
    assert stored.last_seen_at == device.last_seen_at, "the old key marks nothing"
    assert not stored.events.filter(kind=DeviceEvent.Kind.BACK_ONLINE).exists()


def test_heartbeats_buffered_before_a_key_reset_mark_nothing(space, owner):
    device = ActivatedDeviceFactory(space=space, online=False, last_seen_at=None)
    record_heartbeat(_authenticated(device), metrics={"cpu": 1})
    reset_device_key(Device.objects.get(pk=device.pk), actor=owner)

    write_buffered_heartbeats()

    after = Device.objects.get(pk=device.pk)
    assert (after.online, after.last_seen_at) == (False, None)
    assert not after.heartbeats.exists()


def test_a_heartbeat_buffered_under_an_earlier_claim_is_not_kept(space):
    """Same key, a later claim: the heartbeat belongs to the claim it came under, not to the next one."""
    [device] = _fleet(space, 1)
    record_heartbeat(_authenticated(device), metrics={"cpu": 1})
    Device.objects.filter(pk=device.pk).update(claimed_at=timezone.now())
    write_buffered_heartbeats()
    assert not device.heartbeats.exists()


def test_the_writer_costs_the_same_statements_for_one_heartbeat_or_many(space):
    devices = _fleet(space, 40)
    record_heartbeat(_authenticated(devices[0]), metrics={})
    with CaptureQueriesContext(connection) as one:
        write_buffered_heartbeats()
    for device in devices:
        record_heartbeat(_authenticated(device), metrics={})
    with CaptureQueriesContext(connection) as many:
        write_buffered_heartbeats()
    assert Heartbeat.objects.count() == 41
    assert len(many) == len(one)


@pytest.mark.usefixtures("counters_unreachable")
def test_while_redis_is_down_the_heartbeat_is_written_directly(client, space):
    device = ActivatedDeviceFactory(space=space, online=False, last_seen_at=None)
    assert record_heartbeat(_authenticated(device), metrics={"cpu": 1}) is not None
    stored = Device.objects.get(pk=device.pk)
    assert (stored.online, stored.last_seen_at is not None) == (True, True)
    assert device.heartbeats.count() == 1


def test_a_full_backlog_writes_the_heartbeat_directly_and_drops_nothing(space, monkeypatch):
    monkeypatch.setattr(heartbeat_intake, "MAX_BACKLOG", 1)
    first, second = _fleet(space, 2)
    record_heartbeat(_authenticated(first), metrics={})
    record_heartbeat(_authenticated(second), metrics={})
    assert second.heartbeats.count() == 1, "written at once: the stream was full"
    assert not first.heartbeats.exists()
    write_buffered_heartbeats()
    assert first.heartbeats.count() == 1


def test_without_batching_the_heartbeat_is_written_directly(space, settings):
    settings.HEARTBEAT_BATCHING = False
    [device] = _fleet(space, 1)
    record_heartbeat(_authenticated(device), metrics={})
    assert device.heartbeats.count() == 1
    assert redis_client().xlen(redis_key(heartbeat_intake.STREAM)) == 0


@pytest.mark.django_db(transaction=True)
def test_a_writer_released_by_a_release_it_waited_for_keeps_nothing(space, owner):
    """The release holds the device when the writer comes to lock it: the writer waits, then finds it released."""
    [device] = _fleet(space, 1)
    record_heartbeat(_authenticated(device), metrics={"cpu": 1})

    released, written, overlapped = race(
        lambda: release_device(Device.objects.get(pk=device.pk), actor=owner), write_buffered_heartbeats
    )

    assert overlapped
    assert not isinstance(released, Exception), released
    assert written == 1
    assert not Heartbeat.objects.filter(device=device).exists()


@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_batch_loses_no_heartbeat(celery_worker_process, space):
    """A real worker takes a batch and is killed (kill -9) while its transaction waits for a device
    another connection holds: the batch stays pending, and the next writer stores all of it once."""
    devices = _fleet(space, 30)
    for n in range(2):
        for device in devices:
            record_heartbeat(_authenticated(device), metrics={"cpu": n})
    holder = psycopg.connect(database_url_for_subprocess())
    holder.execute("SELECT id FROM devices_device WHERE id = %s FOR UPDATE", [devices[-1].pk])
    try:
        write_buffered_heartbeats_task.delay()
        wait_for(lambda: _pending() == 60)
        wait_for(lambda: holder.execute("SELECT EXISTS (SELECT 1 FROM pg_locks WHERE NOT granted)").fetchone()[0])
        os.kill(celery_worker_process.pid, signal.SIGKILL)
        celery_worker_process.wait(timeout=10)
    finally:
        holder.rollback()
        holder.close()
    assert not Heartbeat.objects.exists(), "the killed batch committed nothing"

    assert write_buffered_heartbeats(reclaim_idle_ms=0) == 60

    assert Heartbeat.objects.count() == 60
    assert _pending() == 0
    assert all(Device.objects.get(pk=device.pk).last_seen_at > device.last_seen_at for device in devices)


def test_writers_running_behind_do_not_make_the_connectivity_sweep_mark_sending_devices_offline(space):
    [sending, silent] = _fleet(space, 2)
    now = timezone.now()
    Device.objects.filter(pk__in=[sending.pk, silent.pk]).update(last_seen_at=now - timedelta(minutes=10))
    # The sending device's heartbeat of 9 minutes ago still waits for a writer.
    nine_minutes_ago = int((now - timedelta(minutes=9)).timestamp() * 1000)
    redis_client().xadd(redis_key(heartbeat_intake.STREAM), {"device": sending.pk}, id=f"{nine_minutes_ago}-0")

    assert record_connectivity_changes(now=now) == 0, "judged as of nine minutes ago: both were online then"

    Device.objects.filter(pk=silent.pk).update(last_seen_at=now - timedelta(minutes=30))
    assert record_connectivity_changes(now=now) == 1
    assert set(Device.objects.filter(online=False).values_list("pk", flat=True)) == {silent.pk}
