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
    assert first == [7, 2, 4, 3, 2, 3, 180]


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
    assert len(units) == 180
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


def test_seed_demo_makes_globex_require_attestation_and_lists_units_certified_by_the_demo_batch(capsys):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from vendors.attestation import b64url_decode, certificate_message, public_key_text, signature_is_valid
    from vendors.models import ProductionBatch

    call_command("seed_demo", stdout=io.StringIO())
    call_command("seed_demo", "--list")
    units = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    globex = [unit for unit in units if unit["vendor"] == "globex"]
    assert len(globex) == 60
    assert all(
        "attestation" not in unit and "unit_private_key" not in unit for unit in units if unit["vendor"] == "acme"
    )
    assert DeviceModel.objects.get(slug="display-55").attestation == "factory_signature"
    assert DeviceModel.objects.get(slug="hub-2").attestation == "none"
    batch = ProductionBatch.objects.get(device_model__slug="display-55")
    for unit in globex[:5]:
        identity = ApprovedIdentity.objects.get(
            device_model=batch.device_model, identifier_1=unit["identifiers"]["cloud_id"].replace("-", "")
        )
        attestation = unit["attestation"]
        assert set(attestation) == {"batch", "unit_public_key", "certificate"}
        assert attestation["batch"] == batch.name
        unit_key = Ed25519PrivateKey.from_private_bytes(b64url_decode(unit["unit_private_key"]))
        assert public_key_text(unit_key) == attestation["unit_public_key"]
        certified = certificate_message(
            "globex", "display-55", batch.name, {"cloud_id": identity.identifier_1}, attestation["unit_public_key"]
        )
        assert signature_is_valid(batch.public_key, certified, attestation["certificate"])
    assert not signature_is_valid(batch.public_key, certified, globex[-1]["attestation"]["certificate"])
    assert len({unit["unit_private_key"] for unit in globex}) == 60


def test_seed_demo_adds_acme_cam_1_whose_units_list_a_claim_code_and_a_label_link(capsys, settings):
    from vendors.claim_codes import claim_code_matches, normalize_claim_code
    from vendors.labels import parse_label_payload

    settings.PORTAL_ORIGIN = "https://portal.example"
    call_command("seed_demo", stdout=io.StringIO())
    call_command("seed_demo", "--list")
    units = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    cameras = [unit for unit in units if unit["model"] == "cam-1"]
    camera_model = DeviceModel.objects.get(vendor__slug="acme", slug="cam-1")

    assert camera_model.name == "Acme Cam 1"
    assert camera_model.claiming_method.requires_claim_code
    assert [field.key for field in camera_model.claiming_method.ordered_fields()] == ["serial_number"]
    assert len(cameras) == 60
    assert len({unit["claim_code"] for unit in cameras}) == 60
    for unit in cameras[:5]:
        assert set(unit["identifiers"]) == {"serial_number"}
        identity = ApprovedIdentity.objects.get(
            device_model=camera_model, identifier_1=unit["identifiers"]["serial_number"]
        )
        assert normalize_claim_code(unit["claim_code"]) == unit["claim_code"]
        assert claim_code_matches(unit["claim_code"], identity.claim_code_hash)
        assert unit["claim_code"] not in identity.claim_code_hash
        prefix = "https://portal.example/claim/label/"
        assert unit["label_url"].startswith(prefix)
        assert parse_label_payload(unit["label_url"][len(prefix) : -1]) == {
            "vendor": "acme",
            "model": "cam-1",
            "identifiers": unit["identifiers"],
            "claim_code": unit["claim_code"],
        }
    assert all("claim_code" not in unit for unit in units if unit["model"] != "cam-1")
