import io
import json

import pytest
from django.core.management import CommandError, call_command

from accounts.models import Membership, Organization, User
from spaces.models import Space
from vendors.models import ApprovedIdentity, DeviceModel, Vendor

pytestmark = pytest.mark.django_db


def _counts():
    return [m.objects.count() for m in (User, Organization, Membership, Space, Vendor, DeviceModel, ApprovedIdentity)]


def test_seed_demo_is_idempotent():
    call_command("seed_demo", stdout=io.StringIO())
    first = _counts()
    call_command("seed_demo", stdout=io.StringIO())
    assert _counts() == first
    assert first == [7, 2, 4, 3, 2, 2, 120]


def test_seed_demo_creates_the_documented_organizations_and_roles():
    call_command("seed_demo", stdout=io.StringIO())
    initech = Organization.objects.get(name="Initech")
    assert sorted(initech.spaces.values_list("name", flat=True)) == ["Auditorium", "Lobby"]
    assert sorted(initech.connected_vendors.values_list("slug", flat=True)) == ["acme", "globex"]
    assert list(Organization.objects.get(name="Umbrella").connected_vendors.values_list("slug", flat=True)) == ["acme"]
    assert Membership.objects.get(user__email="oscar@initech.example").role == "operator"
    sam = User.objects.get(email="sam@acme.example")
    assert sam.is_staff
    assert not sam.is_superuser
    assert sam.vendor_staff.vendor.slug == "acme"
    assert User.objects.get(email="admin@example.com").check_password("demo-pass-2026")


def test_seed_demo_list_prints_units_that_are_approved(capsys):
    call_command("seed_demo", stdout=io.StringIO())
    call_command("seed_demo", "--list")
    units = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(units) == 120
    acme = units[0]
    assert set(acme) == {"vendor", "model", "identifiers"}
    assert ApprovedIdentity.objects.filter(
        device_model__slug=acme["model"],
        identifier_1=acme["identifiers"]["serial_number"],
        identifier_2=acme["identifiers"]["mac_address"],
    ).exists()
    assert not ApprovedIdentity.objects.filter(device__isnull=False).exists()


def test_seed_demo_refuses_production_settings(settings):
    settings.ALLOW_DEMO_DATA = False
    with pytest.raises(CommandError, match="production"):
        call_command("seed_demo")


def test_seed_demo_makes_globex_require_a_factory_signature_and_lists_signatures_that_verify(capsys):
    from vendors.attestation import attestation_message, signature_is_valid
    from vendors.models import ProductionBatch

    call_command("seed_demo", stdout=io.StringIO())
    call_command("seed_demo", "--list")
    units = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    globex = [unit for unit in units if unit["vendor"] == "globex"]
    assert len(globex) == 60
    assert all("attestation" not in unit for unit in units if unit["vendor"] == "acme")
    assert DeviceModel.objects.get(slug="display-55").attestation == "factory_signature"
    assert DeviceModel.objects.get(slug="hub-2").attestation == "none"
    batch = ProductionBatch.objects.get(device_model__slug="display-55")
    for unit in globex[:5]:
        identity = ApprovedIdentity.objects.get(
            device_model=batch.device_model, identifier_1=unit["identifiers"]["cloud_id"].replace("-", "")
        )
        message = attestation_message("globex", "display-55", [identity.identifier_1])
        assert unit["attestation"]["batch"] == batch.name
        assert signature_is_valid(batch.public_key, message, unit["attestation"]["signature"])
    assert not signature_is_valid(batch.public_key, message, globex[-1]["attestation"]["signature"])
