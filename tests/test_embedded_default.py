"""The embedded default that `bin/run` starts (SQLite, tasks in-process) serves the portal.

The rest of the suite runs on PostgreSQL; this test runs the same code on SQLite, in a
subprocess with the local settings, the way a newcomer's first `bin/run` does.
"""

import json
import os
import re
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
from accounts.management.commands.seed_demo import demo_identifiers, demo_units

alice = User.objects.get(email="alice@initech.example")
auditorium = Space.objects.get(name="Auditorium")
device = claim_device(
    space=auditorium,
    device_model=DeviceModel.objects.get(slug="hub-2"),
    identifiers=demo_identifiers("hub-2", 1),
    name="Screen",
    actor=alice,
)
client = Client()
client.force_login(alice)
organization = auditorium.organization
pages = {
    "home": "/",
    "overview": f"/o/{organization.code}/",
    "dashboard": f"/spaces/{auditorium.code}/",
    "claim": f"/spaces/{auditorium.code}/claim/",
    "device": f"/devices/{device.code}/",
    "audit log": f"/accounts/o/{organization.code}/audit/",
}
answers = {}
for name, url in pages.items():
    response = client.get(url)
    answers[name] = {"status": response.status_code, "location": response.get("Location"), "html": response.text}
unit = SimulatedDevice({"vendor": "acme", "model": "hub-2", "identifiers": demo_identifiers("hub-2", 2)})
activation = client.post("/api/v1/activations?wait=5", unit.activation_request(), content_type="application/json")
answers["activation"] = {"status": activation.status_code, "json": activation.json()}
unit.finish_activation(activation.json())
beat = client.post(
    "/api/v1/device/heartbeat", {"metrics": {"cpu": 1}}, content_type="application/json", headers=unit.authorization
)
answers["heartbeat"] = {"status": beat.status_code, "json": beat.json()}
for model in ("cam-1", "display-55"):
    proven = SimulatedDevice(next(unit for unit in demo_units() if unit["model"] == model)).activation_request()
    answer = client.post("/api/v1/activations?wait=5", proven, content_type="application/json")
    answers[model] = {"status": answer.status_code, "json": answer.json()}
print(json.dumps({"pages": pages, "answers": answers}))
"""


def _title(html):
    return " ".join(re.search(r"<title>(.*?)</title>", html, re.S).group(1).split())


def _heading(html):
    return " ".join(re.sub(r"<[^>]+>", "", re.search(r"<h1[^>]*>(.*?)</h1>", html, re.S).group(1)).split())


def test_the_embedded_default_serves_every_main_page_on_sqlite(tmp_path):
    """Each page answers itself (no redirect followed: a sign-in page bouncing every URL would
    otherwise pass), with its own title, heading and content; the device API activates a unit of
    each demo model."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")} | {
        "DJANGO_SETTINGS_MODULE": "config.settings.local",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'embedded.sqlite3'}",
        "DJANGO_ALLOWED_HOSTS": "testserver",
        "DJANGO_LOG_LEVEL": "ERROR",
    }
    result = subprocess.run(
        [sys.executable, "-c", "import json, os\n" + WALK],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    walk = json.loads(result.stdout.splitlines()[-1])
    pages, answers = walk["pages"], walk["answers"]

    assert (answers["home"]["status"], answers["home"]["location"]) == (302, pages["overview"])
    for name in ("overview", "dashboard", "claim", "device", "audit log"):
        assert answers[name]["status"] == 200, f"{name}: {answers[name]['status']} {answers[name]['location']}"
    overview, dashboard, claim, device, audit = (
        answers[name]["html"] for name in ("overview", "dashboard", "claim", "device", "audit log")
    )
    assert (_title(overview), _heading(overview)) == ("Initech · Overview · Device Portal", "Initech")
    assert "Auditorium" in overview
    assert "Lobby" in overview
    assert (_title(dashboard), _heading(dashboard)) == ("Auditorium · Dashboard · Device Portal", "Auditorium")
    assert "Screen" in dashboard
    assert _heading(claim) == "Claim a device"
    assert _title(claim).startswith("Step 1 of ")
    assert (_title(device), _heading(device)) == ("Screen · Device Portal", "Screen")
    assert "AH2-260001" in device
    assert (_title(audit), _heading(audit)) == ("Initech · Audit log · Device Portal", "Audit log")
    assert "Screen" in audit

    assert answers["activation"]["status"] == 200
    assert answers["activation"]["json"]["status"] == "assigned"
    assert answers["heartbeat"]["status"] == 200
    assert answers["heartbeat"]["json"]["device"]["status"] == "registered"
    for model in ("cam-1", "display-55"):  # a claim code, an attestation by the unit's own key
        assert (answers[model]["status"], answers[model]["json"]["status"]) == (200, "assigned"), answers[model]
