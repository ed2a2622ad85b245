"""The QR label's link: signed in or not, it lands in the wizard of the space chosen with the
unit's values filled in, showing the model and the serial number but never the claim code; a
used, forged or malformed label gets a page saying so."""

import io
import logging
from urllib.parse import urlsplit

import pytest
from django.core.management import call_command
from django.test import Client
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
    DeviceModelFactory,
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


def _confirm(client, space):
    """Confirm the space on the page a label link lands on: the POST that checks the label."""
    return client.post(reverse("claim-label-space"), {"space": str(space.code)}, follow=True)


def _wizard_name_step(response):
    assert response.context["wizard"]["steps"].current == "name"
    _shows_the_unit_but_not_its_code(response)
    return response


def test_a_signed_in_owner_of_one_space_lands_on_the_name_step_and_claims(client, owner, space, unit):
    client.force_login(owner)
    confirm = client.get(_link(unit), follow=True)
    assert confirm.context["spaces"] == [space]
    _shows_the_unit_but_not_its_code(confirm)
    response = _confirm(client, space)
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
    assert f"Sign in to claim the {unit.device_model.name} with Serial number {unit.identifier_1}." in landing.text
    signed_in = client.post(
        login_url, {"username": owner.email, "password": PASSWORD, "next": reverse("claim-label-space")}, follow=True
    )
    _shows_the_unit_but_not_its_code(signed_in)
    name_step = _confirm(client, space)
    _wizard_name_step(name_step)
    assert name_step.context["space"] == space


def test_an_owner_of_several_spaces_chooses_one_on_a_page_showing_the_unit(client, owner, space, unit):
    lobby = SpaceFactory(organization=space.organization, name="Lobby")
    client.force_login(owner)
    choice = client.get(_link(unit), follow=True)
    assert [s.name for s in choice.context["spaces"]] == sorted([space.name, "Lobby"])
    _shows_the_unit_but_not_its_code(choice)
    response = _confirm(client, lobby)
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
    client.get(_link(unit))
    response = _confirm(client, space)
    assert response.status_code == 400
    assert "This device is already claimed by another organization." in response.text
    _shows_the_unit_but_not_its_code(response)


def test_a_label_of_a_unit_already_yours_links_to_its_space(client, owner, space, unit):
    ClaimedDeviceFactory(identity=unit, space=space, name="Door camera")
    client.force_login(owner)
    client.get(_link(unit))
    response = _confirm(client, space)
    assert "already claimed this device" in response.text
    assert reverse("space-dashboard", args=[space.code]) in response.text


def test_a_forged_label_is_not_approved_and_counts_as_a_failed_claim(client, owner, space, unit, settings):
    settings.CLAIM_FAILURE_LIMIT = 1
    ClaimedDeviceFactory(identity=unit)  # a forged code learns nothing about the unit
    client.force_login(owner)
    client.get(_link(unit, code=generate_claim_code()))
    forged = _confirm(client, space)
    assert forged.status_code == 400
    assert "that is not approved for this device" in forged.text
    assert "already claimed" not in forged.text
    client.get(_link(unit))
    again = _confirm(client, space)
    assert again.status_code == 429
    assert "Too many failed claim attempts" in again.text


@pytest.mark.parametrize("payload", ["not-a-label", "e30", "x" * 700, "eyJ2IjoiYWNtZSJ9"])
def test_a_malformed_label_gets_a_page_saying_so(client, owner, payload):
    client.force_login(owner)
    response = client.get(reverse("claim-label", args=[payload]), follow=True)
    assert response.status_code == 400
    assert "This link is not the label of a device this portal knows" in response.text


def test_a_label_of_a_model_the_portal_does_not_know_is_malformed(client, owner, unit):
    client.force_login(owner)
    link = label_url("http://testserver", "acme", "no-such-model", {"serial_number": "X1"}, CODE)
    assert client.get(link, follow=True).status_code == 400


def test_a_viewer_is_told_that_owners_and_admins_claim(client, viewer, unit):
    client.force_login(viewer)
    response = client.get(_link(unit), follow=True)
    assert response.status_code == 403
    assert "claimed by the owners and admins of an organization connected to" in response.text
    _shows_the_unit_but_not_its_code(response)


def test_the_wizard_opens_from_a_label_only_once(client, owner, space, unit):
    client.force_login(owner)
    client.get(_link(unit))
    _confirm(client, space)
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
    name_step = _confirm(client, lobby)
    assert name_step.context["wizard"]["steps"].current == "name"
    assert camera["claim_code"] not in name_step.text
    step = f"claim_{lobby.code.hex}-current_step"
    client.post(reverse("claim-device", args=[lobby.code]), {step: "name", "name-name": "Door camera"})
    device = Device.objects.get(identity__identifier_1=camera["identifiers"]["serial_number"])
    assert (device.space, device.status) == (lobby, Device.Status.CLAIMED)


# What the session, the logs and an outsider get of a label


def _session_text(client):
    return str(dict(client.session.items()))


def _holds_neither_code_nor_payload(client, link):
    text = _session_text(client)
    payload = link.split("/")[-2]
    return CODE not in text and format_claim_code(CODE) not in text and payload not in text


def test_the_session_keeps_a_hash_of_a_labels_code_never_the_code_nor_the_payload(client, owner, space, unit):
    lobby = SpaceFactory(organization=space.organization, name="Lobby")
    client.force_login(owner)
    link = _link(unit)
    client.get(link, follow=True)  # abandoned at the space choice
    assert _holds_neither_code_nor_payload(client, link)
    name_step = _confirm(client, lobby)
    assert name_step.context["wizard"]["steps"].current == "name"
    assert _holds_neither_code_nor_payload(client, link)
    back = client.post(
        reverse("claim-device", args=[lobby.code]),
        {f"claim_{lobby.code.hex}-current_step": "name", "wizard_goto_step": "identifiers", "name-name": ""},
    )
    assert back.context["wizard"]["steps"].current == "identifiers"
    assert CODE not in back.text
    assert _holds_neither_code_nor_payload(client, link)


def test_a_viewer_refused_a_label_keeps_nothing_of_it_in_the_session(client, viewer, unit):
    client.force_login(viewer)
    assert client.get(_link(unit), follow=True).status_code == 403
    assert "claim_label" not in _session_text(client)


def test_a_kept_label_is_forgotten_after_fifteen_minutes(client, owner, space, unit):
    client.force_login(owner)
    client.get(_link(unit))
    session = client.session
    session["claim_label"]["until"] -= 15 * 60
    session.save()
    response = client.get(reverse("claim-label-space"), follow=True)
    assert "There is no label to continue with" in response.text


def test_a_refusal_page_forgets_the_label(client, owner, space, unit):
    client.force_login(owner)
    client.get(_link(unit, code=generate_claim_code()))
    assert _confirm(client, space).status_code == 400
    assert "There is no label to continue with" in client.get(reverse("claim-label-space"), follow=True).text


def test_opening_a_label_spends_no_claim_attempt_before_the_space_is_confirmed(client, owner, space, unit, settings):
    settings.CLAIM_FAILURE_LIMIT = 2
    client.force_login(owner)
    for _ in range(4):  # another site sending the owner to forged labels, as a top-level navigation would
        page = client.get(_link(unit, code=generate_claim_code()), follow=True)
        assert page.status_code == 200
        assert page.context["spaces"] == [space]
    client.get(_link(unit))
    _wizard_name_step(_confirm(client, space))


def test_the_label_is_checked_only_by_a_post_carrying_the_csrf_token(owner, space, unit):
    client = Client(enforce_csrf_checks=True)
    client.force_login(owner)
    client.get(_link(unit))
    assert client.post(reverse("claim-label-space"), {"space": str(space.code)}).status_code == 403
    assert not Device.objects.filter(identity=unit).exists()


def _signed_out_answer(link):
    client = Client()
    response = client.get(link, follow=True)
    messages = [str(message) for message in response.context["messages"]]
    return response.status_code, tuple(response.redirect_chain[1:]), tuple(messages), "Acme" in response.text


def test_signed_out_visitors_get_one_redirect_whatever_the_label_names_and_read_only_the_model_and_serial(unit):
    sign_in = f"{reverse('login')}?next={reverse('claim-label-space')}"
    general = (200, ((sign_in, 302),), ("Sign in to claim the device whose label you opened.",), False)
    named = f"Sign in to claim the {unit.device_model.name} with Serial number {unit.identifier_1}."
    others = {
        _signed_out_answer(
            label_url(
                "http://testserver", unit.device_model.vendor.slug, "no-such-model", {"serial_number": "X1"}, CODE
            )
        ),
        _signed_out_answer(label_url("http://testserver", "no-such-vendor", "cam-1", {"serial_number": "X1"})),
        _signed_out_answer(reverse("claim-label", args=["not-a-label"])),
    }
    assert others == {general}
    # A wrong code and a unit that does not exist read like the real one: no unit is looked up.
    forged = label_url(
        "http://testserver", unit.device_model.vendor.slug, unit.device_model.slug, {"serial_number": "SN-999999"}, CODE
    )
    assert _signed_out_answer(_link(unit))[:3] == (200, ((sign_in, 302),), (named,))
    assert _signed_out_answer(forged)[:3] == (
        200,
        ((sign_in, 302),),
        (f"Sign in to claim the {unit.device_model.name} with Serial number SN-999999.",),
    )


def test_the_sign_in_page_never_echoes_a_labels_text(camera):
    text = "is locked. Call +1-555-0100 to unlock it"
    link = label_url("http://testserver", camera.vendor.slug, camera.slug, {"serial_number": text}, CODE)
    assert text not in Client().get(link, follow=True).text


@pytest.mark.parametrize(
    ("identifiers", "code"),
    [
        ({"serial_number": "!!"}, CODE),
        ({"serial_number": "is locked. Call +1-555-0100"}, CODE),
        ({"mac_address": "AC1-260001"}, CODE),
        ({"serial_number": "AC1-260001"}, "12345678903"),
        ({"serial_number": "AC1-260001"}, None),
    ],
    ids=["serial of the wrong form", "text", "no serial", "code with a typo", "no code"],
)
def test_a_label_whose_values_fail_their_checks_is_malformed_and_counts_as_no_attempt(
    client, owner, space, unit, settings, identifiers, code
):
    settings.CLAIM_FAILURE_LIMIT = 1
    client.force_login(owner)
    link = label_url("http://testserver", unit.device_model.vendor.slug, "cam-1", identifiers, code)
    for _ in range(2):
        refused = client.get(link, follow=True)
        assert refused.status_code == 400
        assert "This link is not the label of a device this portal knows" in refused.text
        assert "+1-555-0100" not in refused.text
    client.get(_link(unit))
    _wizard_name_step(_confirm(client, space))


def test_a_label_of_another_models_unit_says_it_may_be_misprinted_not_to_choose_a_model(client, owner, space, unit):
    DeviceModelFactory(vendor=unit.device_model.vendor, name="Acme Cam 2", slug="cam-2", claim_code=True)
    client.force_login(owner)
    client.get(
        label_url("http://testserver", unit.device_model.vendor.slug, "cam-2", {"serial_number": "AC1-260001"}, CODE)
    )
    refused = _confirm(client, space)
    assert refused.status_code == 400
    assert "the label may be misprinted" in refused.text
    assert "as the model" not in refused.text


def test_while_attempts_cannot_be_counted_the_label_page_answers_503_and_keeps_the_label(
    client, owner, space, unit, counters_unreachable
):
    client.force_login(owner)
    client.get(_link(unit))
    unavailable = _confirm(client, space)
    assert unavailable.status_code == 503
    assert "cannot count claim attempts" in unavailable.text
    again = client.get(reverse("claim-label-space"))
    assert again.context["spaces"] == [space]


def test_no_log_record_of_a_label_refusal_carries_the_payload(client, owner, unit, caplog):
    client.force_login(owner)
    link = _link(unit, serial="!!")
    with caplog.at_level(logging.INFO):
        assert client.get(link, follow=True).status_code == 400
    payload = link.split("/")[-2]
    assert caplog.records
    assert not [record for record in caplog.records if payload in record.getMessage()]


@pytest.mark.parametrize("logger", ["django.request", "django.server"])
def test_the_request_and_server_logs_write_a_label_path_without_its_payload(unit, logger, caplog):
    payload = _link(unit).split("/")[-2]
    with caplog.at_level(logging.INFO, logger=logger):
        logging.getLogger(logger).warning('"%s" %s %s', f"GET /claim/label/{payload}/ HTTP/1.1", 500, 12)
    (record,) = caplog.records
    assert record.getMessage() == '"GET /claim/label/<payload>/ HTTP/1.1" 500 12'


def test_an_organization_requiring_two_factor_offers_no_space_to_a_session_without_one(client, owner, space, unit):
    ClaimedDeviceFactory(identity=unit)
    space.organization.two_factor_required = True
    space.organization.save(update_fields=["two_factor_required"])
    client.force_login(owner)
    client.get(_link(unit))
    page = client.get(reverse("claim-label-space"))
    assert space.name not in page.text
    response = _confirm(client, space)
    assert "This device is already claimed by another organization." not in response.text
