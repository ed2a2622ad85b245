"""The embedded default that `bin/run` starts (SQLite, tasks in-process) serves the portal.

The rest of the suite runs on PostgreSQL; this test runs the same code on SQLite, in a
subprocess with the local settings, the way a newcomer's first `bin/run` does.
"""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

WALK = """
import django
django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)
call_command("createcachetable")
call_command("seed_demo", stdout=open(os.devnull, "w"))
from django.test import Client
from accounts.models import User
from devices.claims import claim_device
from devices.simulator import SimulatedDevice
from spaces.models import Space
from vendors.models import DeviceModel
from accounts.management.commands.seed_demo import demo_identifiers

alice = User.objects.get(email="alice@initech.example")
auditorium = Space.objects.get(name="Auditorium")
device = claim_device(
    space=auditorium,
    device_model=DeviceModel.objects.get(slug="hub-2"),
    identifiers=demo_identifiers("acme", 1),
    name="Screen",
    actor=alice,
)
client = Client()
client.force_login(alice)
pages = [
    "/",
    f"/o/{auditorium.organization.code}/",
    f"/spaces/{auditorium.code}/",
    f"/spaces/{auditorium.code}/claim/",
    f"/devices/{device.code}/",
    f"/accounts/o/{auditorium.organization.code}/audit/",
]
for url in pages:
    print(url, client.get(url, follow=True).status_code)
unit = SimulatedDevice({"vendor": "acme", "model": "hub-2", "identifiers": demo_identifiers("acme", 2)})
activation = client.post("/api/v1/activations?wait=5", unit.activation_request(), content_type="application/json")
print("activation", activation.status_code)
unit.finish_activation(activation.json())
beat = client.post(
    "/api/v1/device/heartbeat", {"metrics": {"cpu": 1}}, content_type="application/json", headers=unit.authorization
)
print("heartbeat", beat.status_code)
"""


def test_the_embedded_default_serves_every_main_page_on_sqlite(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")} | {
        "DJANGO_SETTINGS_MODULE": "config.settings.local",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'embedded.sqlite3'}",
        "DJANGO_ALLOWED_HOSTS": "testserver",
        "DJANGO_LOG_LEVEL": "ERROR",
    }
    result = subprocess.run(
        [sys.executable, "-c", "import os\n" + WALK], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    statuses = dict(line.rsplit(" ", 1) for line in result.stdout.splitlines())
    assert statuses.pop("activation") == "200", result.stdout
    assert statuses.pop("heartbeat") == "200", result.stdout
    assert set(statuses.values()) == {"200"}, result.stdout
