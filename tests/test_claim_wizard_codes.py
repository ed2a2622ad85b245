"""The claim wizard for a model claimed by serial number + claim code: the Claim code field, its
typo, a wrong code answered exactly as a wrong serial number (the pages compared field for
field), and the code never written back into a page."""

from html.parser import HTMLParser

import pytest
from django.views.debug import SafeExceptionReporterFilter

from devices.models import Device
from vendors.claim_codes import format_claim_code, generate_claim_code, hash_claim_code

from .conftest import CAMERA_CODE as CODE
from .factories import ApprovedIdentityFactory
from .test_claim_wizard import Wizard

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_throttle")]


@pytest.fixture
def wizard(client, owner, space):
    client.force_login(owner)
    return Wizard(client, space)


class FormFields(HTMLParser):
    """Each input of a page's form with its attributes, and the text of each error message."""

    def __init__(self, html):
        super().__init__()
        self.inputs, self.errors, self._in_error = {}, [], 0
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "input" and attrs.get("name", "").startswith("identifiers-"):
            self.inputs[attrs["name"]] = attrs
        classes = attrs.get("class", "").split()
        if self._in_error or "invalid-feedback" in classes or "alert-danger" in classes:
            self._in_error += 1

    def handle_endtag(self, tag):
        if self._in_error:
            self._in_error -= 1

    def handle_data(self, data):
        if self._in_error and data.strip():
            self.errors.append(data.strip())


def test_the_identifier_step_asks_for_the_serial_number_and_the_claim_code(wizard, camera):
    wizard.start()
    response = wizard.post("model", device_model=camera.pk)
    assert list(response.context["wizard"]["form"].fields) == ["serial_number", "claim_code"]
    assert "Claim code" in response.text
    assert "Scan the label" in response.text


@pytest.mark.parametrize("typed", [CODE, format_claim_code(CODE), "1234 567 8902"])
def test_a_device_is_claimed_with_its_claim_code_typed_in_any_usual_form(wizard, unit, typed):
    response = wizard.claim(unit.device_model, serial_number="ac1-260001", claim_code=typed)
    assert response.status_code == 302
    assert Device.objects.get(identity=unit).status == Device.Status.CLAIMED


def test_a_claim_code_typo_is_an_error_on_its_field_and_does_not_count(wizard, unit, settings):
    settings.CLAIM_FAILURE_LIMIT = 1
    wizard.start()
    wizard.post("model", device_model=unit.device_model.pk)
    for _ in range(3):
        response = wizard.post("identifiers", serial_number=unit.identifier_1, claim_code="1234-567-8903")
        errors = response.context["wizard"]["form"].errors
        assert list(errors) == ["claim_code"]
        assert errors["claim_code"][0].startswith("This claim code has a typo")
        assert "8903" not in response.text
    wizard.post("identifiers", serial_number=unit.identifier_1, claim_code=CODE)
    assert wizard.post("name", name="Door camera").status_code == 302


def _refused_page(wizard, unit, **typed):
    response = wizard.claim(unit.device_model, **typed)
    assert response.context["wizard"]["steps"].current == "identifiers"
    return FormFields(response.text), response


def test_a_wrong_code_and_a_wrong_serial_number_give_the_same_page_field_for_field(wizard, unit):
    ApprovedIdentityFactory(device_model=unit.device_model, identifier_1="AC1-260002", claim_code=CODE)
    wrong_code, _ = _refused_page(wizard, unit, serial_number="AC1-260001", claim_code=generate_claim_code())
    wrong_serial, _ = _refused_page(wizard, unit, serial_number="AC1-260003", claim_code=CODE)
    other_units_serial, _ = _refused_page(wizard, unit, serial_number="AC1-260002", claim_code=generate_claim_code())

    def without_values(page):
        return {name: {k: v for k, v in attrs.items() if k != "value"} for name, attrs in page.inputs.items()}

    assert without_values(wrong_code) == without_values(wrong_serial) == without_values(other_units_serial)
    assert wrong_code.errors == wrong_serial.errors == other_units_serial.errors
    assert wrong_code.errors[0].startswith(
        "You have attempted to add a Serial number and Claim code that is not approved for this device."
    )


def test_a_refused_code_is_not_written_back_into_the_page_nor_kept(wizard, unit, client):
    wrong = generate_claim_code()
    _, response = _refused_page(wizard, unit, serial_number=unit.identifier_1, claim_code=wrong)
    assert wrong not in response.text
    assert format_claim_code(wrong) not in response.text
    assert 'value="AC1-260001"' in response.text  # the serial number typed is kept
    assert wrong not in str(dict(client.session))


def test_the_name_step_shows_the_serial_number_but_not_the_claim_code(wizard, unit):
    wizard.start()
    wizard.post("model", device_model=unit.device_model.pk)
    response = wizard.post("identifiers", serial_number=unit.identifier_1, claim_code=format_claim_code(CODE))
    assert response.context["wizard"]["steps"].current == "name"
    assert "AC1-260001" in response.text
    assert CODE not in response.text
    assert format_claim_code(CODE) not in response.text


def test_going_back_to_the_identifier_step_does_not_show_the_code(wizard, unit):
    wizard.start()
    wizard.post("model", device_model=unit.device_model.pk)
    wizard.post("identifiers", serial_number=unit.identifier_1, claim_code=CODE)
    response = wizard.back("name", "identifiers", name="Door camera")
    assert response.context["wizard"]["steps"].current == "identifiers"
    assert CODE not in response.text


def _session_text(client):
    return str(dict(client.session.items()))


def _holds_no_code(client, code=CODE):
    text = _session_text(client)
    return code not in text and format_claim_code(code) not in text


def test_the_session_keeps_a_keyed_hash_of_the_claim_code_never_the_code(wizard, unit, client):
    wizard.start()
    wizard.post("model", device_model=unit.device_model.pk)
    wizard.post("identifiers", serial_number=unit.identifier_1, claim_code=format_claim_code(CODE))
    assert _holds_no_code(client)
    wizard.back("name", "identifiers", name="Door camera")
    assert _holds_no_code(client)
    back_again = wizard.back("identifiers", "model", serial_number=unit.identifier_1, claim_code="1234 567 8902")
    assert back_again.context["wizard"]["steps"].current == "model"
    assert _holds_no_code(client)
    wizard.post("model", device_model=unit.device_model.pk)
    wizard.post("identifiers", serial_number=unit.identifier_1, claim_code=CODE)
    assert wizard.post("name", name="Door camera").status_code == 302
    assert Device.objects.get(identity=unit).status == Device.Status.CLAIMED


def test_the_stored_hash_of_a_code_typed_as_the_code_is_not_accepted(wizard, unit):
    wizard.start()
    wizard.post("model", device_model=unit.device_model.pk)
    response = wizard.post("identifiers", serial_number=unit.identifier_1, claim_code=hash_claim_code(CODE))
    assert list(response.context["wizard"]["form"].errors) == ["claim_code"]


def test_error_reports_hide_the_claim_code_posted(wizard, unit):
    wizard.start()
    wizard.post("model", device_model=unit.device_model.pk)
    response = wizard.post("identifiers", serial_number=unit.identifier_1, claim_code=CODE)
    posted = SafeExceptionReporterFilter().get_post_parameters(response.wsgi_request)
    assert posted["identifiers-claim_code"] != CODE
    assert posted["identifiers-serial_number"] == unit.identifier_1
