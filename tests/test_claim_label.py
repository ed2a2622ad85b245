"""The QR label's link: signed in or not, it lands in the wizard of the space chosen with the
unit's values filled in, showing the model and the serial number but never the claim code; a
used, forged or malformed label gets a page saying so."""

import io
from urllib.parse import urlsplit

import pytest
from django.core.management import call_command
from django.urls import reverse

from accounts.management.commands.seed_demo import demo_units
from accounts.models import Role, User
from devices.models import Device
from vendors.claim_codes import format_claim_code, generate_claim_code
from vendors.labels import label_url

from .conftest import CAMERA_CODE as CODE
from .factories import (
    PASSWORD,
    ClaimedDeviceFactory,
    MembershipFactory,
    SpaceFactory,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_throttle")]


def _link(unit, code=CODE, serial="AC1-260001"):
    model = unit.device_model
    return label_url("http://testserver", model.vendor.slug, model.slug, {"serial_number": serial}, code)


def _shows_the_unit_but_not_its_code(response):
    assert "Acme Cam 1" in response.text
    assert "AC1-260001" in response.text
    assert CODE not in response.text
    assert format_claim_code(CODE) not in response.text


def _wizard_name_step(response):
    assert response.context["wizard"]["steps"].current == "name"
    _shows_the_unit_but_not_its_code(response)
    return response


def test_a_signed_in_owner_of_one_space_lands_on_the_name_step_and_claims(client, owner, space, unit):
    client.force_login(owner)
    response = client.get(_link(unit), follow=True)
    _wizard_name_step(response)
    wizard_url = reverse("claim-device", args=[space.code])
    assert response.redirect_chain[-1][0] == wizard_url
    claimed = client.post(wizard_url, {f"claim_{space.code.hex}-current_step": "name", "name-name": "Door camera"})
    assert claimed.status_code == 302
    device = Device.objects.get(identity=unit)
    assert (device.status, device.space, device.name) == (Device.Status.CLAIMED, space, "Door camera")


def test_a_signed_out_visitor_signs_in_and_then_lands_in_the_wizard(client, owner, space, unit):
    landing = client.get(_link(unit), follow=True)
    login_url, _ = landing.redirect_chain[-1]
    # The payload waits in the session: the sign-in page's link carries no code, nor the payload.
    assert login_url == f"{reverse('login')}?next={reverse('claim-label-space')}"
    assert _link(unit).split("/")[-2] not in login_url
    _shows_the_unit_but_not_its_code(landing)
    signed_in = client.post(
        login_url, {"username": owner.email, "password": PASSWORD, "next": reverse("claim-label-space")}, follow=True
    )
    _wizard_name_step(signed_in)
    assert signed_in.context["space"] == space


def test_an_owner_of_several_spaces_chooses_one_on_a_page_showing_the_unit(client, owner, space, unit):
    lobby = SpaceFactory(organization=space.organization, name="Lobby")
    client.force_login(owner)
    choice = client.get(_link(unit), follow=True)
    assert [s.name for s in choice.context["spaces"]] == sorted([space.name, "Lobby"])
    _shows_the_unit_but_not_its_code(choice)
    response = client.post(reverse("claim-label-space"), {"space": str(lobby.code)}, follow=True)
    _wizard_name_step(response)
    assert response.context["space"] == lobby


def test_a_space_of_another_organization_cannot_be_chosen(client, owner, space, unit, outsider):
    SpaceFactory(organization=space.organization)
    client.force_login(owner)
    client.get(_link(unit))
    theirs = outsider.memberships.get().organization.spaces.get()
    response = client.post(reverse("claim-label-space"), {"space": str(theirs.code)})
    assert response.status_code == 400
    assert "Choose the space" in response.text


def test_a_used_label_says_the_unit_is_claimed_by_another_organization(client, owner, space, unit):
    ClaimedDeviceFactory(identity=unit)
    client.force_login(owner)
    response = client.get(_link(unit), follow=True)
    assert response.status_code == 400
    assert "This device is already claimed by another organization." in response.text
    _shows_the_unit_but_not_its_code(response)


def test_a_label_of_a_unit_already_yours_links_to_its_space(client, owner, space, unit):
    ClaimedDeviceFactory(identity=unit, space=space, name="Door camera")
    client.force_login(owner)
    response = client.get(_link(unit), follow=True)
    assert "already claimed this device" in response.text
    assert reverse("space-dashboard", args=[space.code]) in response.text


def test_a_forged_label_is_not_approved_and_counts_as_a_failed_claim(client, owner, space, unit, settings):
    settings.CLAIM_FAILURE_LIMIT = 1
    ClaimedDeviceFactory(identity=unit)  # a forged code learns nothing about the unit
    client.force_login(owner)
    forged = client.get(_link(unit, code=generate_claim_code()), follow=True)
    assert forged.status_code == 400
    assert "that is not approved for this device" in forged.text
    assert "already claimed" not in forged.text
    again = client.get(_link(unit), follow=True)
    assert "Too many failed claim attempts" in again.text


@pytest.mark.parametrize("payload", ["not-a-label", "e30", "x" * 700, "eyJ2IjoiYWNtZSJ9"])
def test_a_malformed_label_gets_a_page_saying_so(client, owner, payload):
    client.force_login(owner)
    response = client.get(reverse("claim-label", args=[payload]))
    assert response.status_code == 400
    assert "This link is not the label of a device this portal knows" in response.text


def test_a_label_of_a_model_the_portal_does_not_know_is_malformed(client, owner, unit):
    client.force_login(owner)
    response = client.get(label_url("http://testserver", "acme", "no-such-model", {"serial_number": "X1"}, CODE))
    assert response.status_code == 400


def test_a_viewer_is_told_that_owners_and_admins_claim(client, viewer, unit):
    client.force_login(viewer)
    response = client.get(_link(unit), follow=True)
    assert response.status_code == 403
    assert "claimed by the owners and admins of an organization connected to" in response.text
    _shows_the_unit_but_not_its_code(response)


def test_the_wizard_opens_from_a_label_only_once(client, owner, space, unit):
    client.force_login(owner)
    client.get(_link(unit), follow=True)
    again = client.get(reverse("claim-device", args=[space.code]))
    assert again.context["wizard"]["steps"].current == "model"


def test_continuing_without_a_label_goes_home_saying_so(client, owner):
    client.force_login(owner)
    response = client.get(reverse("claim-label-space"), follow=True)
    assert "There is no label to continue with" in response.text


def test_an_admin_of_two_organizations_chooses_among_the_spaces_of_both(client, owner, space, unit):
    other = MembershipFactory(user=owner, role=Role.ADMIN, organization__name="Second Org")
    other.organization.connected_vendors.add(unit.device_model.vendor)
    SpaceFactory(organization=other.organization, name="Warehouse")
    client.force_login(owner)
    choice = client.get(_link(unit), follow=True)
    assert {s.organization_id for s in choice.context["spaces"]} == {space.organization_id, other.organization_id}


def test_a_demo_cameras_label_url_from_seed_demo_claims_it_into_the_space_chosen(client):
    call_command("seed_demo", stdout=io.StringIO())
    camera = next(unit for unit in demo_units() if unit["model"] == "cam-1")
    alice = User.objects.get(email="alice@initech.example")
    client.force_login(alice)
    choice = client.get(urlsplit(camera["label_url"]).path, follow=True)
    assert [s.name for s in choice.context["spaces"]] == ["Auditorium", "Lobby"]
    lobby = choice.context["spaces"][1]
    name_step = client.post(reverse("claim-label-space"), {"space": str(lobby.code)}, follow=True)
    assert name_step.context["wizard"]["steps"].current == "name"
    assert camera["claim_code"] not in name_step.text
    step = f"claim_{lobby.code.hex}-current_step"
    client.post(reverse("claim-device", args=[lobby.code]), {step: "name", "name-name": "Door camera"})
    device = Device.objects.get(identity__identifier_1=camera["identifiers"]["serial_number"])
    assert (device.space, device.status) == (lobby, Device.Status.CLAIMED)
