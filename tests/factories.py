"""factory-boy factories for every domain model. Identities get unique, well-formed identifiers."""

import uuid
from datetime import timedelta

import factory
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.utils import timezone
from factory.django import DjangoModelFactory

from accounts.management.commands.seed_demo import HUB_COMMANDS, HUB_SETTINGS
from accounts.models import Membership, Organization, Role, User
from devices.keys import hash_device_key
from devices.models import Device, Heartbeat
from releaserequests.models import ReleaseRequest
from spaces.models import Space
from vendors.attestation import b64url_encode, certificate_message, public_key_text, sign
from vendors.claim_codes import hash_claim_code
from vendors.claiming_methods import install_shipped_methods
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

PASSWORD = "correct-horse-battery"


def shipped_method(slug):
    """A shipped claiming method; re-installed if a transactional test flushed the migration's rows."""
    if not ClaimingMethod.objects.filter(slug=slug).exists():
        install_shipped_methods(ClaimingMethod, IdentifierField)
    return ClaimingMethod.objects.get(slug=slug)


class UserFactory(DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    email = factory.Sequence(lambda n: f"user{n}@example.test")
    full_name = factory.Faker("name")
    password = factory.PostGenerationMethodCall("set_password", PASSWORD)

    @factory.post_generation
    def _save(obj, create, extracted, **kwargs):
        if create:
            obj.save()


class OrganizationFactory(DjangoModelFactory):
    class Meta:
        model = Organization
        skip_postgeneration_save = True

    name = factory.Sequence(lambda n: f"Organization {n}")

    @factory.post_generation
    def vendors(obj, create, extracted, **kwargs):
        if create and extracted:
            obj.connected_vendors.set(extracted)


class MembershipFactory(DjangoModelFactory):
    class Meta:
        model = Membership

    user = factory.SubFactory(UserFactory)
    organization = factory.SubFactory(OrganizationFactory)
    role = Role.OWNER


class SpaceFactory(DjangoModelFactory):
    class Meta:
        model = Space

    organization = factory.SubFactory(OrganizationFactory)
    name = factory.Sequence(lambda n: f"Space {n}")


class VendorFactory(DjangoModelFactory):
    class Meta:
        model = Vendor
        django_get_or_create = ["slug"]

    name = factory.Sequence(lambda n: f"Vendor {n}")
    slug = factory.Sequence(lambda n: f"vendor-{n}")
    support_email = factory.LazyAttribute(lambda o: f"support@{o.slug}.example")


class DeviceModelFactory(DjangoModelFactory):
    """A model claimed by serial number + MAC address (the shipped method)."""

    class Meta:
        model = DeviceModel

    vendor = factory.SubFactory(VendorFactory)
    name = factory.Sequence(lambda n: f"Model {n}")
    slug = factory.Sequence(lambda n: f"model-{n}")
    claiming_method = factory.LazyFunction(lambda: shipped_method("serial-mac"))
    heartbeat_interval = 60
    command_declarations = factory.LazyFunction(lambda: [dict(c) for c in HUB_COMMANDS])
    setting_declarations = factory.LazyFunction(lambda: [dict(d) for d in HUB_SETTINGS])

    class Params:
        cloud_id = factory.Trait(claiming_method=factory.LazyFunction(lambda: shipped_method("cloud-id")))
        claim_code = factory.Trait(claiming_method=factory.LazyFunction(lambda: shipped_method("serial-claim-code")))


def _mac(n):
    return ":".join(f"{b:02X}" for b in (0x02, 0x00, (n >> 24) & 255, (n >> 16) & 255, (n >> 8) & 255, n & 255))


def _cloud_id(n):
    alphabet = "ABCDEFGHJKMNPQRTUVWXY34679"
    digits = []
    for _ in range(16):
        n, r = divmod(n, len(alphabet))
        digits.append(alphabet[r])
    return "".join(digits)


class ApprovedIdentityFactory(DjangoModelFactory):
    """Identifier columns follow the model's claiming method: serial + MAC, a cloud ID, or a serial
    alone (claim-code models: pass `claim_code=` to store its hash)."""

    class Meta:
        model = ApprovedIdentity

    class Params:
        claim_code = None

    device_model = factory.SubFactory(DeviceModelFactory)
    identifier_1 = factory.LazyAttributeSequence(
        lambda o, n: _cloud_id(n + 10_000) if o.device_model.claiming_method.slug == "cloud-id" else f"SN-{n:06d}"
    )
    identifier_2 = factory.LazyAttributeSequence(
        lambda o, n: _mac(n) if o.device_model.claiming_method.slug == "serial-mac" else None
    )
    claim_code_hash = factory.LazyAttribute(lambda o: hash_claim_code(o.claim_code) if o.claim_code else "")


class DeviceFactory(DjangoModelFactory):
    """An unclaimed device; use `claimed_into(space)` traits via kwargs organization/space/status."""

    class Meta:
        model = Device

    identity = factory.SubFactory(ApprovedIdentityFactory)
    device_model = factory.LazyAttribute(lambda o: o.identity.device_model)
    status = Device.Status.UNREGISTERED


class ClaimedDeviceFactory(DeviceFactory):
    space = factory.SubFactory(SpaceFactory)
    organization = factory.LazyAttribute(lambda o: o.space.organization)
    status = Device.Status.CLAIMED
    name = factory.Sequence(lambda n: f"Device {n}")
    claimed_at = factory.LazyFunction(timezone.now)


class HeartbeatFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Heartbeat

    device = factory.SubFactory(ClaimedDeviceFactory)
    received_at = factory.LazyFunction(timezone.now)
    metrics = factory.LazyFunction(lambda: {"cpu": 10.0})


class ActivatedDeviceFactory(ClaimedDeviceFactory):
    """A claimed device that activated: it holds a key (tests that need the key itself activate
    through the API) issued from a documentation address."""

    key_hash = factory.Sequence(lambda n: hash_device_key(n.to_bytes(32, "big")))
    activated_at = factory.LazyFunction(timezone.now)
    key_issued_from = "198.51.100.7"


class VendorStaffFactory(DjangoModelFactory):
    class Meta:
        model = VendorStaff

    user = factory.SubFactory(UserFactory, is_staff=True)
    vendor = factory.SubFactory(VendorFactory)


# Production batches (factory attestation). `private_key` is kept on the instance for signing.
class ProductionBatchFactory(DjangoModelFactory):
    class Meta:
        model = ProductionBatch

    device_model = factory.SubFactory(DeviceModelFactory, attestation=Attestation.FACTORY_SIGNATURE)
    name = factory.Sequence(lambda n: f"batch-{n}")
    private_key = factory.LazyFunction(Ed25519PrivateKey.generate)
    public_key = factory.LazyAttribute(lambda o: public_key_text(o.private_key))

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        private_key = kwargs.pop("private_key", None)
        batch = super()._create(model_class, *args, **kwargs)
        batch.private_key = private_key
        return batch


def attested_unit(batch, identity, /, unit_key=None, **certified):
    """A unit of `batch`'s model as `seed_demo --list` gives a Globex one: its identifiers, its
    attestation (the batch's certificate of its unit key, `unit_key` or a new one) and that key's
    seed, for SimulatedDevice to sign requests with. `certified` overrides what the certificate covers."""
    model = identity.device_model
    unit_key = unit_key or Ed25519PrivateKey.generate()
    covered = {
        "vendor": model.vendor.slug,
        "model": model.slug,
        "batch": batch.name,
        "identifiers": identity.identifiers,
        "unit_public_key": public_key_text(unit_key),
    } | certified
    message = certificate_message(
        covered["vendor"], covered["model"], covered["batch"], covered["identifiers"], covered["unit_public_key"]
    )
    return {
        "vendor": model.vendor.slug,
        "model": model.slug,
        "identifiers": identity.identifiers,
        "attestation": {
            "batch": batch.name,
            "unit_public_key": public_key_text(unit_key),
            "certificate": sign(batch.private_key, message),
        },
        "unit_private_key": b64url_encode(unit_key.private_bytes_raw()),
    }


def serial_list_csv(rows):
    """A serial + MAC serial list of `rows` well-formed, distinct units, as CSV bytes."""
    lines = ["serial_number,mac_address"]
    lines += [f"WK-{n:07d},02:40:00:{n >> 16 & 255:02X}:{n >> 8 & 255:02X}:{n & 255:02X}" for n in range(rows)]
    return ("\n".join(lines) + "\n").encode()


def api_token(organization, role=Role.ADMIN, *, name="Inventory", actor=None, **options):
    """A token of `organization` with `role`, made as the tokens page makes it; returns (token, its text)."""
    from apitokens.tokens import create_token

    return create_token(organization, name=name, role=role, actor=actor, **options)


class ReleaseRequestFactory(DjangoModelFactory):
    """An open request about a claimed device, from another organization (`requesting_organization`)."""

    class Meta:
        model = ReleaseRequest

    device = factory.SubFactory(ClaimedDeviceFactory)
    holding_organization = factory.LazyAttribute(lambda o: o.device.organization)
    requesting_organization = factory.SubFactory(OrganizationFactory)
    message = "I bought this unit second-hand; please release it."
    created_at = factory.LazyFunction(timezone.now)
    expires_at = factory.LazyAttribute(lambda o: o.created_at + timedelta(days=14))


def webhook_endpoint(organization, url, *, events=None, secret="", actor=None):
    """An endpoint of `organization` at `url`, made as the Webhooks page makes it; returns (endpoint, secret)."""
    from webhooks.endpoints import add_endpoint
    from webhooks.models import all_events

    return add_endpoint(
        organization, url=url, events=all_events() if events is None else events, secret=secret, actor=actor
    )


def authenticator(user):
    """A confirmed authenticator app of `user` (TOTP): give its codes with authenticator_code."""
    from django_otp.plugins.otp_totp.models import TOTPDevice

    return TOTPDevice.objects.create(user=user, name="Authenticator app", confirmed=True)


def authenticator_code(device, *, steps_ahead=0):
    """The code `device`'s app shows now (or `steps_ahead` 30-second steps later: django-otp accepts
    the next step too, and each step once)."""
    from django_otp.oath import TOTP

    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift + steps_ahead)
    return f"{totp.token():0{device.digits}d}"


def sent_once_key():
    """The key a page's create form carries (portal/sent_once.py): a new one is a new page."""
    return uuid.uuid4().hex
