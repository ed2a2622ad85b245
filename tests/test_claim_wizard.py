"""The Organization Overview, the space dashboard and the + Claim Device wizard, through Django's test client."""

from datetime import timedelta

import pytest
from django.core.cache import cache
from django.urls import reverse
from django.utils import timezone

from accounts.models import Role
from devices.models import Device, DeviceEvent
from vendors.models import ApprovedIdentity

from .factories import (
    ApprovedIdentityFactory,
    ClaimedDeviceFactory,
    DeviceModelFactory,
    MembershipFactory,
    OrganizationFactory,
    SpaceFactory,
    VendorFactory,
)

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_throttle():
    # The failure counters live in Redis, which outlives each test's database transaction.
    cache.clear()


class Wizard:
    """Posts the wizard's steps the way its page does."""

    def __init__(self, client, space):
        self.client = client
        self.url = reverse("claim-device", args=[space.code])
        self.prefix = f"claim_{space.code.hex}"

    def start(self):
        return self.client.get(self.url)

    def post(self, step, **fields):
        data = {f"{self.prefix}-current_step": step} | {f"{step}-{key}": value for key, value in fields.items()}
        return self.client.post(self.url, data)

    def back(self, step, to, **fields):
        data = {f"{self.prefix}-current_step": step, "wizard_goto_step": to}
        return self.client.post(self.url, data | {f"{step}-{key}": value for key, value in fields.items()})

    def claim(self, device_model, name="Screen on auditorium wall", **identifiers):
        self.start()
        self.post("model", device_model=device_model.pk)
        self.post("identifiers", **identifiers)
        return self.post("name", name=name)


def _identifiers(identity):
    return {"serial_number": identity.identifier_1, "mac_address": identity.identifier_2}


@pytest.fixture
def wizard(client, owner, space):
    client.force_login(owner)
    return Wizard(client, space)


def _errors(response):
    form = response.context["wizard"]["form"]
    return response.context["wizard"]["steps"].current, form.errors


# The Organization Overview


def test_overview_counts_each_spaces_devices_by_connection_status(client, owner, space, device_model):
    now = timezone.now()
    ClaimedDeviceFactory.create_batch(2, space=space, activated_at=now, last_seen_at=now)
    ClaimedDeviceFactory(space=space, activated_at=now - timedelta(days=2), last_seen_at=now - timedelta(days=1))
    ClaimedDeviceFactory(space=space)
    client.force_login(owner)
    response = client.get(reverse("organization-overview", args=[space.organization.code]))
    counted = response.context["spaces"].get(pk=space.pk)
    assert (counted.device_count, counted.online_count, counted.offline_count, counted.awaiting_count) == (4, 2, 1, 1)
    assert "2 online" in response.text
    assert "1 awaiting first connection" in response.text


def test_overview_of_a_member_of_several_organizations_offers_switching_between_them(client, owner, organization):
    MembershipFactory(user=owner, organization=OrganizationFactory(name="Second Org"), role=Role.VIEWER)
    client.force_login(owner)
    response = client.get(reverse("organization-overview", args=[organization.code]))
    assert "dropdown-menu" in response.text
    assert "Second Org" in response.text


def test_overview_query_count_does_not_grow_with_spaces_or_devices(
    client, owner, organization, django_assert_max_num_queries
):
    client.force_login(owner)
    url = reverse("organization-overview", args=[organization.code])
    SpaceFactory(organization=organization)
    client.get(url)  # the first visit also remembers the organization in the session (in PostgreSQL)
    with django_assert_max_num_queries(8) as few:
        client.get(url)
    for space in SpaceFactory.create_batch(5, organization=organization):
        ClaimedDeviceFactory.create_batch(3, space=space)
    with django_assert_max_num_queries(len(few.captured_queries)):
        client.get(url)


def test_overview_of_another_organization_is_not_found(client, outsider, organization):
    client.force_login(outsider)
    assert client.get(reverse("organization-overview", args=[organization.code])).status_code == 404


# The space dashboard


def test_dashboard_lists_devices_with_vendor_model_status_and_connection(client, owner, space):
    now = timezone.now()
    ClaimedDeviceFactory(space=space, name="Hall screen", activated_at=now, last_seen_at=now)
    ClaimedDeviceFactory(space=space, name="Spare hub")
    client.force_login(owner)
    response = client.get(reverse("space-dashboard", args=[space.code]))
    text = response.text
    assert "Hall screen" in text
    assert "Online" in text
    assert "Claimed · awaiting first connection" in text
    assert "Never connected" in text


def test_dashboard_query_count_does_not_grow_with_the_number_of_devices(
    client, owner, space, django_assert_max_num_queries
):
    client.force_login(owner)
    url = reverse("space-dashboard", args=[space.code])
    ClaimedDeviceFactory(space=space)
    with django_assert_max_num_queries(10) as few:
        client.get(url)
    ClaimedDeviceFactory.create_batch(60, space=space)
    with django_assert_max_num_queries(len(few.captured_queries)):
        assert client.get(url).context["is_paginated"]


@pytest.mark.parametrize(
    ("role", "shows_button"), [("owner", True), ("admin_member", True), ("operator", False), ("viewer", False)]
)
def test_claim_button_is_shown_to_owners_and_admins_only(client, space, request, role, shows_button):
    client.force_login(request.getfixturevalue(role))
    response = client.get(reverse("space-dashboard", args=[space.code]))
    assert (reverse("claim-device", args=[space.code]) in response.text) is shows_button


# Who may claim


@pytest.mark.parametrize(
    ("role", "status"), [("owner", 200), ("admin_member", 200), ("operator", 403), ("viewer", 403)]
)
def test_wizard_is_open_to_owners_and_admins_and_forbidden_to_other_roles(client, space, request, role, status):
    client.force_login(request.getfixturevalue(role))
    assert client.get(reverse("claim-device", args=[space.code])).status_code == status


def test_wizard_of_another_organizations_space_is_not_found(client, outsider, space):
    client.force_login(outsider)
    assert client.get(reverse("claim-device", args=[space.code])).status_code == 404


def test_wizard_asks_anonymous_visitors_to_sign_in(client, space):
    response = client.get(reverse("claim-device", args=[space.code]))
    assert response.status_code == 302
    assert response.url.startswith(reverse("login"))


def test_an_operator_cannot_claim_by_posting_the_final_step(client, operator, space, device_model):
    identity = ApprovedIdentityFactory(device_model=device_model)
    client.force_login(operator)
    assert Wizard(client, space).claim(device_model, **_identifiers(identity)).status_code == 403
    assert not Device.objects.filter(identity=identity).exists()


# The steps


def test_an_organization_connected_to_one_vendor_starts_at_the_model_step(wizard, device_model):
    response = wizard.start()
    assert response.context["wizard"]["steps"].current == "model"
    assert "<title>Step 1 of 3 · Model · Claim a device" in response.text
    assert "Vendor" not in [item["title"] for item in response.context["progress"]]


def test_an_organization_connected_to_several_vendors_chooses_the_vendor_first(wizard, organization, device_model):
    other = VendorFactory(name="Globex")
    other_model = DeviceModelFactory(vendor=other, name="Globex Display 55", cloud_id=True)
    organization.connected_vendors.add(other)
    response = wizard.start()
    assert "<title>Step 1 of 4 · Vendor · Claim a device" in response.text
    response = wizard.post("vendor", vendor=other.pk)
    assert "<title>Step 2 of 4 · Model · Claim a device" in response.text
    assert list(response.context["form"].fields["device_model"].queryset) == [other_model]


def test_the_identifier_step_asks_for_the_models_fields_with_label_and_where_to_find_them(wizard, device_model):
    wizard.start()
    response = wizard.post("model", device_model=device_model.pk)
    assert "<title>Step 2 of 3 · Identifiers · Claim a device" in response.text
    assert list(response.context["form"].fields) == ["serial_number", "mac_address"]
    assert "MAC address" in response.text
    assert "Printed on the same label, after “MAC”" in response.text
    assert device_model.vendor.support_email in response.text


def test_a_cloud_id_model_asks_for_the_device_cloud_id_only(wizard, organization):
    cloud_model = DeviceModelFactory(vendor=organization.connected_vendors.get(), cloud_id=True)
    wizard.start()
    response = wizard.post("model", device_model=cloud_model.pk)
    assert list(response.context["form"].fields) == ["cloud_id"]


def test_every_identifier_is_mandatory(wizard, device_model):
    wizard.start()
    wizard.post("model", device_model=device_model.pk)
    step, errors = _errors(wizard.post("identifiers", serial_number="AH2-260001", mac_address=""))
    assert (step, errors) == ("identifiers", {"mac_address": ["Enter the MAC address."]})


def test_a_malformed_mac_address_gets_a_field_error_with_the_expected_format_and_keeps_what_was_typed(
    wizard, device_model
):
    wizard.start()
    wizard.post("model", device_model=device_model.pk)
    response = wizard.post("identifiers", serial_number="AH2-260001", mac_address="AA:BB:CC")
    step, errors = _errors(response)
    assert step == "identifiers"
    assert errors["mac_address"][0].startswith("This is not a valid MAC address: expected 12 hexadecimal digits")
    assert 'value="AA:BB:CC"' in response.text
    assert 'value="AH2-260001"' in response.text


@pytest.mark.parametrize("typed_mac", ["AA:BB:CC:DD:EE:FF", "aa-bb-cc-dd-ee-ff", "aabb.ccdd.eeff", "AABBCCDDEEFF"])
def test_the_wizard_claims_with_a_mac_address_in_any_usual_format(wizard, device_model, typed_mac):
    identity = ApprovedIdentityFactory(device_model=device_model, identifier_2="AA:BB:CC:DD:EE:FF")
    response = wizard.claim(device_model, serial_number=identity.identifier_1, mac_address=typed_mac)
    assert response.status_code == 302
    assert Device.objects.get(identity=identity).status == Device.Status.CLAIMED


def test_going_back_and_forward_keeps_what_was_typed(wizard, device_model):
    wizard.start()
    wizard.post("model", device_model=device_model.pk)
    wizard.post("identifiers", serial_number="AH2-260001", mac_address="02:ac:e0:00:00:01")
    response = wizard.back("name", to="identifiers", name="Half-typed name")
    assert 'value="02:ac:e0:00:00:01"' in response.text
    response = wizard.back("identifiers", to="model", serial_number="AH2-260009", mac_address="02:ac:e0:00:00:09")
    assert response.context["form"]["device_model"].value() == str(device_model.pk)
    response = wizard.post("model", device_model=device_model.pk)
    assert 'value="AH2-260009"' in response.text
    response = wizard.post("identifiers", serial_number="AH2-260009", mac_address="02:ac:e0:00:00:09")
    assert 'value="Half-typed name"' in response.text


def test_the_name_step_shows_what_is_about_to_be_claimed(wizard, device_model):
    wizard.start()
    wizard.post("model", device_model=device_model.pk)
    response = wizard.post("identifiers", serial_number="ah2-260001", mac_address="02ace0000001")
    assert "<title>Step 3 of 3 · Name · Claim a device" in response.text
    assert response.context["typed_identifiers"] == [("Serial number", "ah2-260001"), ("MAC address", "02ace0000001")]


def test_claiming_puts_the_device_on_the_space_dashboard_with_a_success_message(client, wizard, space, device_model):
    identity = ApprovedIdentityFactory(device_model=device_model)
    response = wizard.claim(device_model, **_identifiers(identity))
    assert response.url == reverse("space-dashboard", args=[space.code])
    dashboard = client.get(response.url)
    assert "“Screen on auditorium wall” is claimed and now in" in dashboard.text
    device = Device.objects.get(identity=identity)
    assert list(dashboard.context["devices"]) == [device]
    assert (device.space, device.name) == (space, "Screen on auditorium wall")
    assert device.events.get().kind == DeviceEvent.Kind.CLAIMED


def test_a_finished_wizard_starts_afresh(client, wizard, device_model):
    identity = ApprovedIdentityFactory(device_model=device_model)
    wizard.claim(device_model, **_identifiers(identity))
    assert wizard.post("name", name="Again").context["wizard"]["steps"].current == "model"


# Refused claims: the message on the step where it can be put right, everything typed kept


def test_a_not_approved_serial_number_is_shown_above_the_fields_with_the_vendor_support(wizard, device_model):
    # A MAC without look-alike characters: the hint reads every value typed.
    identity = ApprovedIdentityFactory(device_model=device_model, identifier_2="AA:AA:AA:CC:DD:EE")
    response = wizard.claim(device_model, serial_number="SN-0O0000", mac_address=identity.identifier_2)
    step, errors = _errors(response)
    assert step == "identifiers"
    assert list(errors) == ["__all__"]
    assert errors["__all__"][0].startswith(
        "You have attempted to add a Serial number and MAC address that is not approved for this device."
    )
    assert f"contact {device_model.vendor.name} support ({device_model.vendor.support_email})" in response.text
    assert "easy to confuse on a sticker: O/0, S/5." in response.text
    assert 'value="SN-0O0000"' in response.text
    assert not Device.objects.filter(status=Device.Status.CLAIMED).exists()


def test_after_a_refusal_the_corrected_identifiers_claim_the_device(wizard, device_model):
    identity = ApprovedIdentityFactory(device_model=device_model)
    wizard.claim(device_model, serial_number="SN-999999", mac_address=identity.identifier_2)
    wizard.post("identifiers", **_identifiers(identity))
    response = wizard.post("name", name="Screen on auditorium wall")
    assert response.status_code == 302
    assert Device.objects.get(identity=identity).name == "Screen on auditorium wall"


def test_identifiers_of_another_model_send_the_user_to_the_model_step_naming_it(wizard, device_model):
    sibling = DeviceModelFactory(vendor=device_model.vendor, name="Acme Hub 3")
    identity = ApprovedIdentityFactory(device_model=sibling)
    response = wizard.claim(device_model, **_identifiers(identity))
    step, errors = _errors(response)
    assert step == "model"
    assert "Choose Acme Hub 3 as the model." in errors["device_model"][0]
    wizard.post("model", device_model=sibling.pk)
    wizard.post("identifiers", **_identifiers(identity))
    assert wizard.post("name", name="Hub").status_code == 302


def test_a_unit_claimed_by_another_organization_is_refused_without_naming_it(wizard, device_model):
    theirs = ClaimedDeviceFactory(identity__device_model=device_model, space__organization__name="Umbrella Corp")
    response = wizard.claim(device_model, **_identifiers(theirs.identity))
    step, errors = _errors(response)
    assert step == "identifiers"
    assert errors["__all__"][0].startswith("This device is already claimed by another organization.")
    assert "Umbrella" not in response.text


def test_a_unit_already_claimed_by_your_organization_links_to_its_space(wizard, space, device_model):
    lobby = SpaceFactory(organization=space.organization, name="Lobby")
    ours = ClaimedDeviceFactory(identity__device_model=device_model, space=lobby, name="Hall screen")
    response = wizard.claim(device_model, **_identifiers(ours.identity))
    step, _ = _errors(response)
    assert step == "identifiers"
    assert f'<a href="{reverse("space-dashboard", args=[lobby.code])}">Open Lobby</a>' in response.text


def test_a_unit_revoked_by_the_vendor_says_the_vendor_withdrew_it(wizard, device_model):
    identity = ApprovedIdentityFactory(device_model=device_model, status=ApprovedIdentity.Status.REVOKED)
    response = wizard.claim(device_model, **_identifiers(identity))
    step, errors = _errors(response)
    assert step == "identifiers"
    assert errors["__all__"][0].startswith(f"{device_model.vendor.name} has withdrawn this unit")


def test_after_ten_failed_attempts_the_wizard_says_when_to_try_again(wizard, device_model):
    identity = ApprovedIdentityFactory(device_model=device_model)
    wizard.claim(device_model, serial_number="SN-999999", mac_address=identity.identifier_2)
    for _ in range(9):
        wizard.post("name", name="Screen")
        wizard.post("identifiers", serial_number="SN-999999", mac_address=identity.identifier_2)
    wizard.post("identifiers", **_identifiers(identity))
    step, errors = _errors(wizard.post("name", name="Screen"))
    assert step == "name"
    assert errors["__all__"][0].startswith("Too many failed claim attempts.")
    assert "try again after" in errors["__all__"][0]
    assert not Device.objects.filter(identity=identity, status=Device.Status.CLAIMED).exists()


def test_wizards_in_two_spaces_do_not_mix(client, wizard, owner, space, device_model):
    other_space = SpaceFactory(organization=space.organization)
    wizard.start()
    wizard.post("model", device_model=device_model.pk)
    Wizard(client, other_space).start()
    response = wizard.post("identifiers", serial_number="AH2-260001", mac_address="02:ac:e0:00:00:01")
    assert response.context["wizard"]["steps"].current == "name"


def test_an_organization_connected_to_no_vendor_is_told_so_instead_of_an_empty_form(wizard, organization):
    organization.connected_vendors.clear()
    response = wizard.start()
    assert "Your organization is not connected to any vendor yet" in response.text
