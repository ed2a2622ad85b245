"""When a device counts as offline: one rule (Device.offline_after) that the device page, the space
dashboard, the organization overview, the connectivity sweep and the uptime all follow."""

import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from devices.models import Device, Heartbeat
from devices.monitoring import monitoring
from devices.telemetry import record_connectivity_changes

from .factories import ClaimedDeviceFactory

pytestmark = pytest.mark.django_db

SILENT_FOR = timedelta(seconds=150)  # the model's interval is 60 s


@pytest.fixture
def silent_device(space):
    """A claimed device, marked online, whose only heartbeat came 150 s ago."""
    last_seen = timezone.now() - SILENT_FOR
    device = ClaimedDeviceFactory(
        space=space, organization=space.organization, activated_at=last_seen, last_seen_at=last_seen, online=True
    )
    Heartbeat.objects.create(device=device, received_at=last_seen, metrics={})
    return device


def what_every_place_says(client, device):
    """(device page, dashboard, overview, sweep, uptime in seconds over the last 24 h) for `device`."""
    page = client.get(reverse("device-detail", args=[device.code])).text
    dashboard = client.get(reverse("space-dashboard", args=[device.space.code])).text
    overview = client.get(reverse("organization-overview", args=[device.organization.code])).text
    swept = record_connectivity_changes()
    Device.objects.filter(pk=device.pk).update(online=True)
    uptime = round(monitoring(Device.objects.get(pk=device.pk))["uptime"] * 24 * 3600)
    return (
        re.search(r'id="connection"><i class="bi [\w-]+"></i> (\w+)<', page).group(1),
        "Online" if "</i> Online</span>" in dashboard else "Offline",
        "offline" if "1 offline" in overview else "online" if "1 online" in overview else "?",
        "marked offline" if swept else "left online",
        uptime,
    )


def test_a_device_silent_for_twice_its_heartbeat_interval_is_offline_everywhere(client, owner, silent_device):
    client.force_login(owner)
    assert what_every_place_says(client, silent_device) == ("Offline", "Offline", "offline", "marked offline", 120)


def test_every_place_follows_the_one_offline_rule(client, owner, silent_device, monkeypatch):
    monkeypatch.setattr(Device, "offline_after", staticmethod(lambda interval: timedelta(seconds=3 * interval)))
    client.force_login(owner)
    assert what_every_place_says(client, silent_device) == ("Online", "Online", "online", "left online", 150)
