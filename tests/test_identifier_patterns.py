"""Vendor-defined identifier patterns run on RE2, which matches in time linear in the value: a
pattern that would backtrack catastrophically on Python's engine answers at once, and a pattern
RE2 cannot run is refused when the vendor saves it."""

import contextlib
import json
import signal

import pytest
from django.core.cache import cache
from django.urls import reverse

from devices.models import ActivationOperation
from devices.simulator import SimulatedDevice
from vendors.models import ClaimingMethod, DeviceModel

from .factories import MembershipFactory, OrganizationFactory, SpaceFactory
from .test_claim_wizard import Wizard

pytestmark = pytest.mark.django_db

# Exponential on a backtracking engine: 2^n ways to read n A's, none followed by a B.
CATASTROPHIC = "(A|A)*B"
HANG_GUARD_SECONDS = 5


@contextlib.contextmanager
def fails_instead_of_hanging(seconds=HANG_GUARD_SECONDS):
    """Interrupt the block with TimeoutError after `seconds`, and every half second after that
    (code that retries what failed must not hang in its retry): the failure mode here is a hang,
    and Python's regular expression engine checks for signals while it backtracks."""

    def interrupt(signum, frame):
        raise TimeoutError(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, seconds, 0.5)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def method_form(pattern, slug="catastrophic"):
    return {
        "name": f"Method {slug}",
        "slug": slug,
        "fields-TOTAL_FORMS": "1",
        "fields-INITIAL_FORMS": "0",
        "fields-MIN_NUM_FORMS": "0",
        "fields-MAX_NUM_FORMS": "3",
        "fields-0-position": "1",
        "fields-0-key": "serial_number",
        "fields-0-label": "Serial number",
        "fields-0-normalization": "text",
        "fields-0-pattern": pattern,
        "fields-0-format_hint": "A's and a B",
    }


@pytest.fixture
def catastrophic_model(acme_admin_client, acme_model):
    """An Acme model whose claiming method Acme's staff gave the catastrophic pattern in the admin."""
    response = acme_admin_client.post(reverse("admin:vendors_claimingmethod_add"), method_form(CATASTROPHIC))
    assert response.status_code == 302
    method = ClaimingMethod.objects.get(slug="catastrophic")
    return DeviceModel.objects.create(
        vendor=acme_model.vendor, name="Backtracker", slug="backtracker", claiming_method=method
    )


def wizard_at_identifiers(client, device_model):
    """A customer's claim wizard, signed in and past the model step."""
    cache.clear()  # claim failures of earlier tests are counted in Redis
    organization = OrganizationFactory(vendors=[device_model.vendor])
    client.force_login(MembershipFactory(organization=organization).user)
    wizard = Wizard(client, SpaceFactory(organization=organization))
    wizard.start()
    wizard.post("model", device_model=device_model.pk)
    return wizard


@pytest.mark.parametrize("pattern", [r"(S)\1N", r"(?=SN)[A-Z0-9]+", r"(?<!X)SN", "SN{2000}"])
def test_a_pattern_re2_cannot_run_is_refused_in_the_admin(acme_admin_client, acme_model, pattern):
    response = acme_admin_client.post(reverse("admin:vendors_claimingmethod_add"), method_form(pattern, "refused"))
    assert response.status_code == 200
    errors = response.context["inline_admin_formsets"][0].formset.errors
    assert "pattern" in errors[0], errors
    assert "cannot run" in " ".join(errors[0]["pattern"])
    assert not ClaimingMethod.objects.filter(slug="refused").exists()


@pytest.mark.parametrize("length", [64, 200])
def test_a_catastrophic_pattern_answers_the_wizard_step_at_once(client, catastrophic_model, length):
    wizard = wizard_at_identifiers(client, catastrophic_model)
    with fails_instead_of_hanging():
        response = wizard.post("identifiers", serial_number="A" * length)
    assert response.status_code == 200
    assert response.context["wizard"]["steps"].current == "identifiers"
    assert "serial_number" in response.context["wizard"]["form"].errors


def test_the_activation_of_a_unit_with_a_catastrophic_pattern_finishes(
    client, catastrophic_model, django_capture_on_commit_callbacks
):
    cache.clear()
    unit = {"vendor": "acme", "model": "backtracker", "identifiers": {"serial_number": "A" * 64}}
    body = json.dumps(SimulatedDevice(unit).activation_request())
    with fails_instead_of_hanging(), django_capture_on_commit_callbacks(execute=True):
        accepted = client.post("/api/v1/activations", body, content_type="application/json")
    assert accepted.status_code == 202, accepted.content
    operation = ActivationOperation.objects.get()
    assert (operation.status, operation.error_code) == ("failed", "not_approved")
    assert operation.refusal_reason == "invalid_identifier", "the device is told no more than for any failed proof"


def test_a_stored_pattern_re2_cannot_run_admits_no_value_instead_of_failing(client, catastrophic_model):
    field = catastrophic_model.claiming_method.fields.get()
    type(field).objects.filter(pk=field.pk).update(pattern=r"(?=A)A+")  # as saved before patterns met RE2
    wizard = wizard_at_identifiers(client, catastrophic_model)
    response = wizard.post("identifiers", serial_number="AAA")
    assert response.status_code == 200
    assert "not a valid Serial number" in " ".join(response.context["wizard"]["form"].errors["serial_number"])
