"""What vendor staff write (names, labels, help texts, formats, declarations, support contacts)
reaches customers as text: saved through the admin by Acme's staff, then fetched over HTTP by an
Initech owner, and parsed. Markup typed by another tenant must never become an element there."""

import json

import pytest
from django.core.cache import cache
from django.test.html import Element, parse_html
from django.urls import reverse

from accounts.models import Role
from vendors.models import ClaimingMethod, DeviceModel, Vendor

from .factories import (
    ApprovedIdentityFactory,
    ClaimedDeviceFactory,
    MembershipFactory,
    OrganizationFactory,
    SpaceFactory,
)
from .test_claim_wizard import Wizard

pytestmark = pytest.mark.django_db


def markup(where):
    """An element htmx would act on as soon as the page loads, named after where it was typed."""
    return f'<b id="x-{where}" hx-post="/" hx-trigger="load">{where}</b>'


def parsed(response):
    assert response.status_code == 200, response.content[:300]
    return parse_html(response.content.decode())


def injected_elements(node):
    """The ids of the elements in the parsed page that came from a vendor's markup."""
    found = []
    for child in node.children if isinstance(node, Element) else []:
        if isinstance(child, Element):
            attributes = dict(child.attributes)
            if "hx-post" in attributes or str(attributes.get("id", "")).startswith("x-"):
                found.append(attributes.get("id"))
            found += injected_elements(child)
    return found


def text_of(node):
    if not isinstance(node, Element):
        return str(node)
    return " ".join(text_of(child) for child in node.children)


def assert_shown_as_text(response, *places):
    page = parsed(response)
    assert injected_elements(page) == []
    text = text_of(page)
    for where in places:
        assert markup(where) in text, f"{where} is not shown as text"


def management_form(prefix, total, initial=0):
    return {
        f"{prefix}-TOTAL_FORMS": str(total),
        f"{prefix}-INITIAL_FORMS": str(initial),
        f"{prefix}-MIN_NUM_FORMS": "0",
        f"{prefix}-MAX_NUM_FORMS": "3",
    }


@pytest.fixture
def acme_wrote_markup_everywhere(acme_admin_client, acme_model):
    """Acme's staff put markup into every text of their vendor, a claiming method and a model."""
    vendor = acme_model.vendor
    response = acme_admin_client.post(
        reverse("admin:vendors_vendor_change", args=[vendor.pk]),
        {
            "name": f"Acme {markup('vendor-name')}",
            "slug": vendor.slug,
            "support_email": "",
            "support_url": "https://support.acme.example/?q=<b>",
        },
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    response = acme_admin_client.post(
        reverse("admin:vendors_claimingmethod_add"),
        {
            "name": f"Sticker {markup('method-name')}",
            "slug": "sticker",
            **management_form("fields", 1),
            "fields-0-position": "1",
            "fields-0-key": "serial_number",
            "fields-0-label": f"S {markup('label')}",
            "fields-0-help_text": markup("help-text"),
            "fields-0-normalization": "text",
            "fields-0-pattern": "[A-Z0-9-]{3,32}",
            "fields-0-format_hint": markup("format-hint"),
        },
    )
    assert response.status_code == 302, response.context["inline_admin_formsets"][0].formset.errors
    choice = {"type": "choice", "choices": [markup("choice"), "plain"]}
    argument = {"key": "level", "label": markup("argument-label"), "help": markup("argument-help"), **choice}
    setting = {"key": "mode", "label": markup("setting-label"), "help": markup("setting-help"), **choice}
    response = acme_admin_client.post(
        reverse("admin:vendors_devicemodel_change", args=[acme_model.pk]),
        {
            "vendor": vendor.pk,
            "name": f"Hub {markup('model-name')}",
            "slug": acme_model.slug,
            "claiming_method": ClaimingMethod.objects.get(slug="sticker").pk,
            "heartbeat_interval": "60",
            "attestation": "none",
            "command_declarations": json.dumps(
                [{"name": "pulse", "label": markup("command-label"), "arguments": [{**argument, "default": "plain"}]}]
            ),
            "setting_declarations": json.dumps([{**setting, "default": markup("choice")}]),
        },
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    acme_model.refresh_from_db()
    return acme_model


@pytest.fixture
def initech_owner(client, acme_wrote_markup_everywhere, globex_model):
    """An owner of Initech, connected to Acme and Globex (so the wizard asks for the vendor)."""
    cache.clear()  # claim failures of earlier tests are counted in Redis
    organization = OrganizationFactory(
        name="Initech", vendors=[acme_wrote_markup_everywhere.vendor, globex_model.vendor]
    )
    owner = MembershipFactory(organization=organization, role=Role.OWNER).user
    client.force_login(owner)
    return SpaceFactory(organization=organization, name="Auditorium")


def test_vendor_markup_reaches_the_claim_wizard_as_text(client, initech_owner, acme_wrote_markup_everywhere):
    device_model = acme_wrote_markup_everywhere
    wizard = Wizard(client, initech_owner)
    assert_shown_as_text(wizard.start(), "vendor-name")
    assert_shown_as_text(wizard.post("vendor", vendor=device_model.vendor.pk), "model-name")
    identifiers_step = wizard.post("model", device_model=device_model.pk)
    assert_shown_as_text(identifiers_step, "vendor-name", "model-name", "method-name", "label", "help-text")


def test_vendor_markup_in_identifier_errors_reaches_the_customer_as_text(
    client, initech_owner, acme_wrote_markup_everywhere
):
    device_model = acme_wrote_markup_everywhere
    wizard = Wizard(client, initech_owner)
    wizard.start()
    wizard.post("vendor", vendor=device_model.vendor.pk)
    wizard.post("model", device_model=device_model.pk)
    malformed = wizard.post("identifiers", serial_number="!")
    assert_shown_as_text(malformed, "label", "format-hint")
    wizard.post("identifiers", serial_number="SN-NOT-APPROVED")
    not_approved = wizard.post("name", name="Screen")
    assert_shown_as_text(not_approved, "label", "vendor-name")


def test_vendor_markup_reaches_the_device_page_and_dashboard_as_text(
    client, initech_owner, acme_wrote_markup_everywhere
):
    identity = ApprovedIdentityFactory(device_model=acme_wrote_markup_everywhere, identifier_2=None)
    device = ClaimedDeviceFactory(identity=identity, space=initech_owner, name="Screen")
    page = client.get(reverse("device-detail", args=[device.code]))
    assert_shown_as_text(
        page,
        "vendor-name",
        "model-name",
        "label",
        "command-label",
        "argument-label",
        "argument-help",
        "setting-label",
        "setting-help",
        "choice",
    )
    dashboard = client.get(reverse("space-dashboard", args=[initech_owner.code]))
    assert_shown_as_text(dashboard, "vendor-name", "model-name", "command-label")


@pytest.mark.parametrize(
    "support_url", ["javascript:alert(document.cookie)", "ftp://files.acme.example/help", "data:text/html,<b>x</b>"]
)
def test_vendor_support_url_must_be_a_web_address(acme_admin_client, acme_model, support_url):
    vendor = acme_model.vendor
    response = acme_admin_client.post(
        reverse("admin:vendors_vendor_change", args=[vendor.pk]),
        {"name": vendor.name, "slug": vendor.slug, "support_email": "", "support_url": support_url},
    )
    assert response.status_code == 200
    assert "support_url" in response.context["adminform"].form.errors
    assert Vendor.objects.get(pk=vendor.pk).support_url == ""


def text_declaration(**overrides):
    return {"key": "mode", "type": "choice", "choices": ["a", "b"], **overrides}


@pytest.mark.parametrize(
    ("field", "declarations"),
    [
        ("setting_declarations", [text_declaration(label={"html": "<b>"})]),
        ("setting_declarations", [text_declaration(help=["<b>"])]),
        ("setting_declarations", [text_declaration(label="x" * 1000)]),
        ("setting_declarations", [text_declaration(choices=[["a", "b"], "c"])]),
        ("setting_declarations", [text_declaration(choices=[{"a": 1}])]),
        ("setting_declarations", [{"key": "level", "type": "integer", "min": "low"}]),
        ("setting_declarations", [{"key": "level", "type": "number", "max": [1]}]),
        ("setting_declarations", [{"key": "name", "type": "string", "max_length": "long"}]),
        ("setting_declarations", [{"key": "name", "type": "string", "max_length": -1}]),
        ("command_declarations", [{"name": "pulse", "label": ["<b>"], "arguments": []}]),
        ("command_declarations", [{"name": "pulse", "arguments": {"key": "x"}}]),
        ("command_declarations", [{"name": "pulse", "arguments": [text_declaration(help=7)]}]),
    ],
)
def test_malformed_declarations_are_refused_in_the_admin(acme_admin_client, acme_model, field, declarations):
    data = {
        "vendor": acme_model.vendor.pk,
        "name": acme_model.name,
        "slug": acme_model.slug,
        "claiming_method": acme_model.claiming_method.pk,
        "heartbeat_interval": "60",
        "attestation": "none",
        "command_declarations": json.dumps(acme_model.command_declarations),
        "setting_declarations": json.dumps(acme_model.setting_declarations),
    }
    response = acme_admin_client.post(
        reverse("admin:vendors_devicemodel_change", args=[acme_model.pk]), data | {field: json.dumps(declarations)}
    )
    assert response.status_code == 200
    assert field in response.context["adminform"].form.errors
    assert getattr(DeviceModel.objects.get(pk=acme_model.pk), field) == getattr(acme_model, field)


def test_well_formed_declarations_of_every_type_are_accepted_in_the_admin(acme_admin_client, acme_model):
    settings = [
        {"key": "count", "label": "Count", "type": "integer", "min": 0, "max": 9, "help": "How many.", "default": 3},
        {"key": "ratio", "type": "number", "min": 0.5, "max": 2},
        {"key": "enabled", "type": "boolean", "default": True},
        {"key": "title", "type": "string", "max_length": 20},
        {"key": "link", "type": "url"},
        {"key": "mode", "type": "choice", "choices": ["a", "b"], "default": "b"},
    ]
    commands = [{"name": "pulse", "label": "Pulse", "arguments": settings}, {"name": "reboot"}]
    data = {
        "vendor": acme_model.vendor.pk,
        "name": acme_model.name,
        "slug": acme_model.slug,
        "claiming_method": acme_model.claiming_method.pk,
        "heartbeat_interval": "60",
        "attestation": "none",
        "command_declarations": json.dumps(commands),
        "setting_declarations": json.dumps(settings),
    }
    response = acme_admin_client.post(reverse("admin:vendors_devicemodel_change", args=[acme_model.pk]), data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    acme_model.refresh_from_db()
    assert (acme_model.setting_declarations, acme_model.command_declarations) == (settings, commands)
