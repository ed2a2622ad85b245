"""Commands, configuration versions and heartbeats, through the domain functions."""

from datetime import timedelta

import pytest
from django.utils import timezone

from devices.actions import release_device
from devices.commands import (
    CommandError,
    deliver_pending_commands,
    expire_commands,
    report_command_result,
    send_command,
)
from devices.configuration import ConfigurationError, desired_configuration, save_configuration
from devices.heartbeat_intake import write_buffered_heartbeats
from devices.heartbeat_partitions import maintain_heartbeat_partitions
from devices.models import Command, ConfigurationVersion, Device, DeviceEvent, Heartbeat
from devices.monitoring import monitoring
from devices.rollups import floor_time
from devices.telemetry import record_connectivity_changes, record_heartbeat

from .factories import ClaimedDeviceFactory, DeviceFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def device():
    return ClaimedDeviceFactory(online=True, last_seen_at=timezone.now())


def test_command_lifecycle_from_queued_to_succeeded(device, owner):
    command = send_command(device, name="identify", arguments={"seconds": 10}, actor=owner)
    assert command.status == Command.Status.QUEUED
    assert [c.pk for c in deliver_pending_commands(device)] == [command.pk]
    command.refresh_from_db()
    assert command.status == Command.Status.DELIVERED
    report_command_result(device, command_code=command.code, succeeded=True, output="blinked")
    command.refresh_from_db()
    assert (command.status, command.output) == (Command.Status.SUCCEEDED, "blinked")
    assert deliver_pending_commands(device) == []
    assert device.events.filter(kind=DeviceEvent.Kind.COMMAND_SENT).count() == 1


def test_command_arguments_are_validated_against_the_models_declaration(device, owner):
    with pytest.raises(CommandError, match="seconds"):
        send_command(device, name="identify", arguments={"seconds": 999}, actor=owner)
    with pytest.raises(CommandError, match="no command"):
        send_command(device, name="self_destruct", arguments={}, actor=owner)
    with pytest.raises(CommandError, match="Unknown"):
        send_command(device, name="reboot", arguments={"force": True}, actor=owner)


def test_a_result_for_another_devices_command_is_refused(device, owner):
    command = send_command(device, name="reboot", arguments={}, actor=owner)
    with pytest.raises(Command.DoesNotExist):
        report_command_result(ClaimedDeviceFactory(), command_code=command.code, succeeded=True)


def test_a_second_result_for_a_finished_command_is_refused(device, owner):
    command = send_command(device, name="reboot", arguments={}, actor=owner)
    report_command_result(device, command_code=command.code, succeeded=False, output="busy")
    with pytest.raises(CommandError, match="already failed"):
        report_command_result(device, command_code=command.code, succeeded=True)


def test_commands_not_completed_in_time_expire(device, owner):
    sent = timezone.now() - timedelta(hours=1)
    command = send_command(device, name="reboot", arguments={}, actor=owner, now=sent)
    assert expire_commands() == 1
    command.refresh_from_db()
    assert command.status == Command.Status.EXPIRED
    assert deliver_pending_commands(device) == []


def test_each_configuration_save_makes_the_next_version(device, owner):
    assert desired_configuration(device) == (0, {"volume": 50, "display_name": "Acme Hub", "time_zone": "UTC"})
    first = save_configuration(device, values={"volume": 20, "display_name": "Lobby", "time_zone": "UTC"}, actor=owner)
    second = save_configuration(device, values={"volume": 30, "display_name": "Lobby", "time_zone": "UTC"}, actor=owner)
    assert (first.version, second.version) == (1, 2)
    assert desired_configuration(device) == (2, {"volume": 30, "display_name": "Lobby", "time_zone": "UTC"})
    again = save_configuration(device, values={"volume": 30, "display_name": "Lobby", "time_zone": "UTC"}, actor=owner)
    assert again.version == 2


def test_configuration_out_of_range_is_refused_with_the_fields_error(device, owner):
    with pytest.raises(ConfigurationError) as caught:
        save_configuration(device, values={"volume": 101, "display_name": "x", "time_zone": "Mars/Base"}, actor=owner)
    assert set(caught.value.errors) == {"volume", "time_zone"}
    assert not ConfigurationVersion.objects.exists()


def test_heartbeat_records_metrics_applied_version_and_says_what_waits(device, owner):
    save_configuration(device, values={"volume": 10, "display_name": "A", "time_zone": "UTC"}, actor=owner)
    send_command(device, name="reboot", arguments={}, actor=owner)
    answer = record_heartbeat(device, metrics={"temperature": 21.5}, config_version=0)
    assert answer == {"commands_pending": True, "config_version": 1}
    write_buffered_heartbeats()
    device.refresh_from_db()
    assert device.applied_config_version == 0
    assert Heartbeat.objects.get(device=device).metrics == {"temperature": 21.5}


def test_unclaimed_devices_heartbeats_are_accepted_but_not_kept():
    device = DeviceFactory(status=Device.Status.REGISTERED)
    record_heartbeat(device, metrics={"temperature": 20})
    write_buffered_heartbeats()
    device.refresh_from_db()
    assert device.last_seen_at is not None
    assert not Heartbeat.objects.exists()


def test_connectivity_sweep_writes_went_offline_then_heartbeat_writes_back_online(device):
    silent_since = timezone.now() - timedelta(seconds=3 * device.device_model.heartbeat_interval)
    Device.objects.filter(pk=device.pk).update(last_seen_at=silent_since)
    assert record_connectivity_changes() == 1
    assert record_connectivity_changes() == 0
    device.refresh_from_db()
    assert not device.online
    record_heartbeat(device, metrics={})
    write_buffered_heartbeats()
    record_heartbeat(device, metrics={})
    write_buffered_heartbeats()
    kinds = list(device.events.order_by("created_at", "id").values_list("kind", flat=True))
    assert kinds == [DeviceEvent.Kind.WENT_OFFLINE, DeviceEvent.Kind.BACK_ONLINE]


def test_heartbeats_older_than_thirty_days_are_purged(device):
    now = timezone.now()
    Heartbeat.objects.create(device=device, received_at=now - timedelta(days=31), metrics={})
    Heartbeat.objects.create(device=device, received_at=now - timedelta(days=29), metrics={})
    assert maintain_heartbeat_partitions(now).deleted == 1
    assert Heartbeat.objects.count() == 1


def test_monitoring_gives_each_metrics_series_and_the_uptime(device):
    now = floor_time(timezone.now(), 300)  # the chart's five-minute buckets start at round minutes
    for minute in range(60):
        at = now - timedelta(minutes=60 - minute)
        Heartbeat.objects.create(device=device, received_at=at, metrics={"cpu": minute, "temp": 20})
    data = monitoring(device, now=now)
    assert sorted(data["series"]) == ["cpu", "temp"]
    assert len(data["series"]["cpu"]) == 12  # five-minute buckets over 24 hours
    assert data["series"]["cpu"][0].average == 2  # minutes 0 to 4
    assert data["uptime"] == pytest.approx(1 / 24, abs=0.001)


def test_release_deletes_commands_configuration_and_telemetry(device, owner):
    send_command(device, name="reboot", arguments={}, actor=owner)
    save_configuration(device, values={"volume": 1, "display_name": "x", "time_zone": "UTC"}, actor=owner)
    record_heartbeat(device, metrics={"cpu": 1}, config_version=1)
    write_buffered_heartbeats()
    release_device(device, actor=owner)
    for model in (Command, ConfigurationVersion, Heartbeat, DeviceEvent):
        assert not model.objects.filter(device=device).exists(), model.__name__
    device.refresh_from_db()
    assert device.applied_config_version is None
