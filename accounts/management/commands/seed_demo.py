"""Demo data: two vendors (three models), two organizations, the demo users and approved units to try.

Idempotent: running it again changes nothing (demo passwords are reset to the documented one).
"""

import base64
import hashlib
import json

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from accounts.models import Membership, Organization, Role, User
from portal.links import portal_origin
from spaces.models import Space
from vendors.attestation import b64url_encode, certificate_message, public_key_text, sign
from vendors.claim_codes import RANDOM_DIGITS, hash_claim_code, verhoeff_check_digit
from vendors.claiming_methods import SHIPPED_METHODS, install_shipped_methods
from vendors.identifiers import normalize
from vendors.labels import label_url
from vendors.models import (
    ApprovedIdentity,
    Attestation,
    ClaimingMethod,
    DeviceModel,
    IdentifierField,
    ProductionBatch,
    Vendor,
    VendorStaff,
)

DEMO_PASSWORD = "demo-pass-2026"  # noqa: S105 (documented demo password)
UNITS_PER_MODEL = 60

# What the demo models accept, declared as data (vendors/declarations.py).
HUB_COMMANDS = [
    {"name": "reboot", "label": "Reboot", "arguments": []},
    {
        "name": "identify",
        "label": "Identify (blink the LED)",
        "arguments": [{"key": "seconds", "label": "Seconds", "type": "integer", "min": 1, "max": 300, "default": 30}],
    },
    {
        "name": "firmware_update",
        "label": "Firmware update",
        "arguments": [{"key": "url", "label": "Firmware URL", "type": "url", "help": "An https:// link to the image."}],
    },
]
TIME_ZONES = ["UTC", "Europe/London", "Europe/Paris", "America/New_York", "America/Los_Angeles", "Asia/Tokyo"]
HUB_SETTINGS = [
    {"key": "volume", "label": "Volume", "type": "integer", "min": 0, "max": 100, "default": 50},
    {"key": "display_name", "label": "Display name", "type": "string", "max_length": 64, "default": "Acme Hub"},
    {"key": "time_zone", "label": "Time zone", "type": "choice", "choices": TIME_ZONES, "default": "UTC"},
]
DISPLAY_SETTINGS = [
    {"key": "brightness", "label": "Brightness", "type": "integer", "min": 0, "max": 100, "default": 80},
    {
        "key": "orientation",
        "label": "Orientation",
        "type": "choice",
        "choices": ["landscape", "portrait"],
        "default": "landscape",
    },
    {"key": "time_zone", "label": "Time zone", "type": "choice", "choices": TIME_ZONES, "default": "UTC"},
]
CAMERA_SETTINGS = [
    {"key": "resolution", "label": "Resolution", "type": "choice", "choices": ["720p", "1080p"], "default": "1080p"},
    {"key": "time_zone", "label": "Time zone", "type": "choice", "choices": TIME_ZONES, "default": "UTC"},
]

VENDORS = [
    {
        "slug": "acme",
        "name": "Acme Devices",
        "support_email": "support@acme.example",
        "support_url": "https://support.acme.example",
        "models": [
            {
                "slug": "hub-2",
                "name": "Acme Hub 2",
                "method": "serial-mac",
                "heartbeat_interval": 60,
                "command_declarations": HUB_COMMANDS,
                "setting_declarations": HUB_SETTINGS,
            },
            {
                "slug": "cam-1",
                "name": "Acme Cam 1",
                "method": "serial-claim-code",
                "heartbeat_interval": 60,
                "command_declarations": HUB_COMMANDS[:2],
                "setting_declarations": CAMERA_SETTINGS,
            },
        ],
    },
    {
        "slug": "globex",
        "name": "Globex",
        "support_email": "help@globex.example",
        "support_url": "https://globex.example/support",
        "models": [
            {
                "slug": "display-55",
                "name": "Globex Display 55",
                "method": "cloud-id",
                "heartbeat_interval": 120,
                "command_declarations": HUB_COMMANDS[:2],
                "setting_declarations": DISPLAY_SETTINGS,
                "attestation": Attestation.FACTORY_SIGNATURE,
            },
        ],
    },
]

ORGANIZATIONS = [
    {"name": "Initech", "spaces": ["Auditorium", "Lobby"], "vendors": ["acme", "globex"]},
    {"name": "Umbrella", "spaces": ["HQ"], "vendors": ["acme"]},
]

USERS = [
    {"email": "alice@initech.example", "full_name": "Alice Owner", "organization": "Initech", "role": Role.OWNER},
    {"email": "oscar@initech.example", "full_name": "Oscar Operator", "organization": "Initech", "role": Role.OPERATOR},
    {"email": "vera@initech.example", "full_name": "Vera Viewer", "organization": "Initech", "role": Role.VIEWER},
    {"email": "uma@umbrella.example", "full_name": "Uma Owner", "organization": "Umbrella", "role": Role.OWNER},
    {"email": "sam@acme.example", "full_name": "Sam (Acme support)", "vendor": "acme"},
    {"email": "gina@globex.example", "full_name": "Gina (Globex support)", "vendor": "globex"},
    {"email": "admin@example.com", "full_name": "Portal admin", "superuser": True},
]


def demo_identifiers(model_slug, index):
    """The identifiers of demo unit number `index` (1-based) of the demo model `model_slug`, as a device sends them."""
    if model_slug == "hub-2":
        return {
            "serial_number": f"AH2-26{index:04d}",
            "mac_address": f"02:AC:E0:00:{index // 256:02X}:{index % 256:02X}",
        }
    if model_slug == "cam-1":
        return {"serial_number": f"AC1-26{index:04d}"}
    digest = hashlib.sha256(f"globex/display-55/{index}".encode()).digest()
    cloud_id = base64.b32encode(digest[:10]).decode()
    return {"cloud_id": "-".join(cloud_id[i : i + 4] for i in range(0, 16, 4))}


# Demo claim codes are derived from this fixed, published seed, so that `--list` can print them
# and the simulator send them: public knowledge, for demo data only. A real serial list's codes
# are random (vendors/claim_codes.generate_claim_code) and only their hashes are stored.
DEMO_CLAIM_CODE_SEED = "device-portal demo claim code"


def demo_claim_code(model_slug, index):
    """The claim code of demo unit number `index` of a model that requires one."""
    digest = hashlib.sha256(f"{DEMO_CLAIM_CODE_SEED}/{model_slug}/{index}".encode()).digest()
    digits = f"{int.from_bytes(digest[:8], 'big') % 10**RANDOM_DIGITS:0{RANDOM_DIGITS}d}"
    return digits + verhoeff_check_digit(digits)


# The demo production batch of every model that requires a factory signature. Its Ed25519 key
# pair is derived from this fixed, published seed, so that the demo (simulator, a person with
# curl) can sign units: private key = SHA-256(DEMO_BATCH_SEED + "/" + vendor slug + "/" + model slug).
DEMO_BATCH_NAME = "demo-batch-1"
DEMO_BATCH_SEED = "device-portal demo factory key"


def demo_batch_private_key(vendor_slug, model_slug):
    """The demo batch's Ed25519 private key: public knowledge, for demo data only."""
    seed = hashlib.sha256(f"{DEMO_BATCH_SEED}/{vendor_slug}/{model_slug}".encode()).digest()
    return Ed25519PrivateKey.from_private_bytes(seed)


# Each demo unit's own Ed25519 key pair, derived from a fixed, published seed too:
# unit private key = SHA-256(DEMO_UNIT_SEED + "/" + vendor slug + "/" + model slug + "/" + unit number).
DEMO_UNIT_SEED = "device-portal demo unit key"


def demo_unit_private_key(vendor_slug, model_slug, index):
    """Demo unit number `index`'s Ed25519 private key: public knowledge, for demo data only."""
    seed = hashlib.sha256(f"{DEMO_UNIT_SEED}/{vendor_slug}/{model_slug}/{index}".encode()).digest()
    return Ed25519PrivateKey.from_private_bytes(seed)


def demo_attestation(vendor_slug, model_spec, identifiers, index):
    """What the factory gives demo unit number `index` of `model_spec`: its attestation object
    (the demo batch's certificate over its normalized identifiers and its unit public key) and,
    base64url, the 32-byte seed of its unit private key."""
    method = shipped_method_spec(model_spec)
    normalized = {
        field["key"]: normalize(identifiers[field["key"]], field["normalization"]) for field in method["fields"]
    }
    unit_key = demo_unit_private_key(vendor_slug, model_spec["slug"], index)
    unit_public_key = public_key_text(unit_key)
    certified = certificate_message(vendor_slug, model_spec["slug"], DEMO_BATCH_NAME, normalized, unit_public_key)
    attestation = {
        "batch": DEMO_BATCH_NAME,
        "unit_public_key": unit_public_key,
        "certificate": sign(demo_batch_private_key(vendor_slug, model_spec["slug"]), certified),
    }
    return attestation, b64url_encode(unit_key.private_bytes_raw())


def shipped_method_spec(model_spec):
    """The shipped claiming method (vendors/claiming_methods.py) a demo model uses, as data."""
    return next(method for method in SHIPPED_METHODS if method["slug"] == model_spec["method"])


def demo_units():
    """Every demo unit as {"vendor", "model", "identifiers"} (+ "attestation" and "unit_private_key"
    where the model requires factory attestation, + "claim_code" and "label_url" where it requires a
    claim code): what its firmware knows to build its activation request (devices/simulator.py)."""
    for spec in VENDORS:
        for model_spec in spec["models"]:
            for index in range(1, UNITS_PER_MODEL + 1):
                unit = {
                    "vendor": spec["slug"],
                    "model": model_spec["slug"],
                    "identifiers": demo_identifiers(model_spec["slug"], index),
                }
                if model_spec.get("attestation") == Attestation.FACTORY_SIGNATURE:
                    unit["attestation"], unit["unit_private_key"] = demo_attestation(
                        spec["slug"], model_spec, unit["identifiers"], index
                    )
                if shipped_method_spec(model_spec).get("requires_claim_code", False):
                    unit["claim_code"] = demo_claim_code(model_spec["slug"], index)
                    link = (spec["slug"], model_spec["slug"], unit["identifiers"], unit["claim_code"])
                    unit["label_url"] = label_url(portal_origin(), *link)
                yield unit


class Command(BaseCommand):
    help = "Create the demo vendors, organizations, users and approved units (idempotent). --list prints the units."

    def add_arguments(self, parser):
        parser.add_argument(
            "--list", action="store_true", help="Print the demo units, one JSON object per line, and exit."
        )

    def handle(self, *args, list=False, **options):
        if list:
            for unit in demo_units():
                self.stdout.write(json.dumps(unit))
            return
        if not getattr(settings, "ALLOW_DEMO_DATA", False):
            raise CommandError("seed_demo refuses to run with production settings.")
        with transaction.atomic():
            self.seed()
        self.stdout.write(self.style.SUCCESS("Demo data is in place. Sign in with any demo user:"))
        for user in USERS:
            self.stdout.write(f"  {user['email']:<24} {DEMO_PASSWORD}")

    def seed(self):
        install_shipped_methods(ClaimingMethod, IdentifierField)
        vendors = {}
        for spec in VENDORS:
            vendor, _ = Vendor.objects.update_or_create(
                slug=spec["slug"],
                defaults={k: spec[k] for k in ("name", "support_email", "support_url")},
            )
            vendors[spec["slug"]] = vendor
            for model_spec in spec["models"]:
                device_model, _ = DeviceModel.objects.update_or_create(
                    vendor=vendor,
                    slug=model_spec["slug"],
                    defaults={
                        "name": model_spec["name"],
                        "claiming_method": ClaimingMethod.objects.get(slug=model_spec["method"]),
                        "heartbeat_interval": model_spec["heartbeat_interval"],
                        "command_declarations": model_spec["command_declarations"],
                        "setting_declarations": model_spec["setting_declarations"],
                        "attestation": model_spec.get("attestation", Attestation.NONE),
                    },
                )
                self.approve_demo_units(device_model)
                if device_model.attestation == Attestation.FACTORY_SIGNATURE:
                    ProductionBatch.objects.get_or_create(
                        device_model=device_model,
                        name=DEMO_BATCH_NAME,
                        defaults={
                            "public_key": public_key_text(demo_batch_private_key(vendor.slug, device_model.slug))
                        },
                    )

        organizations = {}
        for spec in ORGANIZATIONS:
            organization = Organization.objects.filter(name=spec["name"]).first()
            organization = organization or Organization.objects.create(name=spec["name"])
            organization.connected_vendors.set([vendors[slug] for slug in spec["vendors"]])
            for name in spec["spaces"]:
                Space.objects.get_or_create(organization=organization, name=name)
            organizations[spec["name"]] = organization

        for spec in USERS:
            user = User.objects.filter(email=spec["email"]).first() or User(email=spec["email"])
            user.full_name = spec["full_name"]
            user.is_staff = bool(spec.get("vendor") or spec.get("superuser"))
            user.is_superuser = bool(spec.get("superuser"))
            user.set_password(DEMO_PASSWORD)
            user.save()
            if "organization" in spec:
                Membership.objects.update_or_create(
                    user=user, organization=organizations[spec["organization"]], defaults={"role": spec["role"]}
                )
            if "vendor" in spec:
                VendorStaff.objects.update_or_create(user=user, defaults={"vendor": vendors[spec["vendor"]]})

    def approve_demo_units(self, device_model):
        fields = device_model.claiming_method.ordered_fields()
        rows = [
            ApprovedIdentity(
                device_model=device_model,
                claim_code_hash=hash_claim_code(unit["claim_code"]) if "claim_code" in unit else "",
                **{field.column: field.clean_value(unit["identifiers"][field.key]) for field in fields},
            )
            for unit in demo_units()
            if (unit["vendor"], unit["model"]) == (device_model.vendor.slug, device_model.slug)
        ]
        # A second run leaves the units as they are but stores their codes' hashes again: the HMAC
        # key (vendors/claim_codes.py) may have changed since the first.
        ApprovedIdentity.objects.bulk_create(
            rows,
            update_conflicts=True,
            unique_fields=["device_model", "identifier_1"],
            update_fields=["claim_code_hash"],
        )
