"""What the device API, factory signatures, serial lists and the admin scoping of activation
operations are keyed on (vendor and model slugs, identifier field keys) is read-only in the admin
once units are approved: a changed value posted by vendor staff is not saved, and the page says why."""

import json

import pytest
from django.urls import reverse

from vendors.models import ClaimingMethod, DeviceModel, IdentifierField, Vendor

from .factories import ApprovedIdentityFactory

pytestmark = pytest.mark.django_db


def vendor_form(vendor, **changes):
    return {"name": vendor.name, "slug": vendor.slug, "support_email": "", "support_url": ""} | changes


def model_form(device_model, **changes):
    return {
        "vendor": device_model.vendor.pk,
        "name": device_model.name,
        "slug": device_model.slug,
        "claiming_method": device_model.claiming_method.pk,
        "heartbeat_interval": str(device_model.heartbeat_interval),
        "attestation": device_model.attestation,
        "command_declarations": json.dumps(device_model.command_declarations),
        "setting_declarations": json.dumps(device_model.setting_declarations),
    } | changes


def method_form(method, **field_changes):
    data = {
        "name": method.name,
        "slug": field_changes.pop("slug", method.slug),
        "fields-TOTAL_FORMS": "1",
        "fields-INITIAL_FORMS": "1",
        "fields-MIN_NUM_FORMS": "0",
        "fields-MAX_NUM_FORMS": "3",
    }
    field = method.fields.get()
    row = {
        "id": field.pk,
        "method": method.pk,
        "position": field.position,
        "key": field.key,
        "label": field.label,
        "help_text": field.help_text,
        "normalization": field.normalization,
        "pattern": field.pattern,
        "format_hint": field.format_hint,
    } | field_changes
    return data | {f"fields-0-{key}": value for key, value in row.items()}


@pytest.fixture
def imei_method(acme_model):
    """An Acme method by IMEI, used by acme_model."""
    method = ClaimingMethod.objects.create(name="IMEI", slug="imei", vendor=acme_model.vendor)
    method.fields.create(
        position=1, key="imei", label="IMEI", normalization="compact", pattern="[0-9]{15}", format_hint="15 digits"
    )
    acme_model.claiming_method = method
    acme_model.save()
    return method


@pytest.fixture
def approved_unit(acme_model, imei_method):
    return ApprovedIdentityFactory(device_model=acme_model, identifier_1="352099001761481", identifier_2=None)


def change_url(obj):
    return reverse(f"admin:vendors_{obj._meta.model_name}_change", args=[obj.pk])


def test_a_vendor_with_units_keeps_its_slug(acme_admin_client, acme_model, approved_unit):
    vendor = acme_model.vendor
    response = acme_admin_client.post(change_url(vendor), vendor_form(vendor, slug="acme-renamed", name="Acme Inc"))
    assert response.status_code == 302
    assert Vendor.objects.values_list("slug", "name").get(pk=vendor.pk) == ("acme", "Acme Inc")
    page = acme_admin_client.get(change_url(vendor))
    assert "slug" not in page.context["adminform"].form.fields
    assert "its slug is fixed" in page.text


def test_a_model_with_units_keeps_its_slug(acme_admin_client, acme_model, approved_unit):
    response = acme_admin_client.post(change_url(acme_model), model_form(acme_model, slug="hub-3", name="Hub 3"))
    assert response.status_code == 302
    assert DeviceModel.objects.values_list("slug", "name").get(pk=acme_model.pk) == ("hub-2", "Hub 3")
    page = acme_admin_client.get(change_url(acme_model))
    assert "slug" not in page.context["adminform"].form.fields
    assert "its slug is fixed" in page.text


def test_a_method_with_units_keeps_its_slug_and_field_keys(acme_admin_client, imei_method, approved_unit):
    response = acme_admin_client.post(
        change_url(imei_method), method_form(imei_method, slug="imei-2", key="imei_1", label="IMEI 1")
    )
    assert response.status_code == 302
    assert ClaimingMethod.objects.get(pk=imei_method.pk).slug == "imei"
    assert IdentifierField.objects.values_list("key", "label").get(method=imei_method) == ("imei", "IMEI 1")
    page = acme_admin_client.get(change_url(imei_method))
    assert "slug" not in page.context["adminform"].form.fields
    assert "key" not in page.context["inline_admin_formsets"][0].formset.forms[0].fields
    assert "its slug is fixed, and so are its fields" in page.text


def test_slugs_and_keys_change_while_there_are_no_units(acme_admin_client, acme_model, imei_method):
    vendor = acme_model.vendor
    assert acme_admin_client.post(change_url(vendor), vendor_form(vendor, slug="acme-2")).status_code == 302
    assert acme_admin_client.post(change_url(acme_model), model_form(acme_model, slug="hub-3")).status_code == 302
    assert acme_admin_client.post(change_url(imei_method), method_form(imei_method, key="imei_1")).status_code == 302
    assert Vendor.objects.get(pk=vendor.pk).slug == "acme-2"
    assert DeviceModel.objects.get(pk=acme_model.pk).slug == "hub-3"
    assert imei_method.fields.get().key == "imei_1"


def test_a_method_with_units_keeps_its_fields(acme_admin_client, imei_method, approved_unit):
    data = method_form(imei_method) | {
        "fields-TOTAL_FORMS": "2",
        "fields-1-label": "Serial number",
        "fields-1-pattern": "[0-9]{6}",
        "fields-1-format_hint": "6 digits",
    }
    response = acme_admin_client.post(change_url(imei_method), data)
    assert response.status_code == 200
    assert "fields cannot be added or removed" in response.text
    assert imei_method.fields.count() == 1
