"""Bad input on every portal form: empty, 10,000 characters, unicode (right-to-left marks, emoji,
NUL) and HTML/script. Each gives a field error or is stored and shown escaped; never a 500."""

import re
from types import SimpleNamespace

import pytest
from django.contrib.auth.tokens import default_token_generator
from django.core.cache import cache
from django.urls import reverse
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accounts.forms import AuditFilterForm, RoleForm, SignUpForm
from accounts.management.commands.seed_demo import HUB_SETTINGS
from accounts.members import invitation_token
from accounts.models import Invitation, Role
from devices.forms import DeclaredValuesForm, DeviceNameForm, IdentifiersForm, ReleaseDeviceForm, RenameDeviceForm
from spaces.forms import SpaceNameForm
from spaces.models import Space

from .conftest import database_state
from .factories import PASSWORD, ApprovedIdentityFactory, ClaimedDeviceFactory, SpaceFactory, UserFactory

pytestmark = pytest.mark.django_db

SCRIPT = "<script>alert(1)</script>"
BAD_VALUES = {
    "empty": "",
    "long": "x" * 10_000,
    "unicode": "\u202eevil\u202c \U0001f6f0\ufe0f \u0645\u0631\u062d\u0628\u0627 \u200f",
    "nul": "a\x00b",
    "html": SCRIPT,
}


@pytest.fixture
def portal(client, organization, owner, space):
    """One signed-in owner and, per form, where it posts and a valid submission to spoil one field of."""
    cache.clear()  # sign-in failures of earlier cases must not throttle later ones
    device = ClaimedDeviceFactory(space=space, name="Screen")
    SpaceFactory(organization=organization, name="Other")
    invitation = Invitation.objects.create(organization=organization, email="invitee@example.test", role=Role.VIEWER)
    reset_user = UserFactory()
    reset_url = reverse(
        "password_reset_confirm",
        args=[urlsafe_base64_encode(force_bytes(reset_user.pk)), default_token_generator.make_token(reset_user)],
    )
    membership = organization.memberships.get(user=owner)
    forms = {
        "sign in": (reverse("login"), None, {"username": owner.email, "password": PASSWORD}),
        "password reset": (reverse("password_reset"), None, {"email": owner.email}),
        # The emailed link stores its token in the session and forwards to the form's own URL.
        "password reset confirm": (
            lambda: client.get(reset_url)["Location"],
            None,
            {"new_password1": "n3w-pass-phrase", "new_password2": "n3w-pass-phrase"},
        ),
        "password change": (
            reverse("password_change"),
            owner,
            {"old_password": PASSWORD, "new_password1": "n3w-pass-phrase", "new_password2": "n3w-pass-phrase"},
        ),
        "accept invitation": (
            reverse("invitation-accept", args=[invitation_token(invitation)]),
            None,
            {"full_name": "New Person", "password1": "n3w-pass-phrase", "password2": "n3w-pass-phrase"},
        ),
        "invite": (reverse("members", args=[organization.code]), owner, {"email": "x@example.test", "role": "viewer"}),
        "change role": (reverse("member-role", args=[organization.code, membership.pk]), owner, {"role": "owner"}),
        "create space": (reverse("space-create", args=[organization.code]), owner, {"name": "Lobby"}),
        "rename space": (reverse("space-settings", args=[space.code]), owner, {"name": "Renamed"}),
        "delete space": (reverse("space-delete", args=[space.code]), owner, {"move_devices_to": "1"}),
        "rename device": (reverse("device-rename", args=[device.code]), owner, {"name": "Renamed"}),
        "configure device": (
            reverse("device-configuration", args=[device.code]),
            owner,
            {"volume": "10", "display_name": "Hall", "time_zone": "UTC"},
        ),
        "send command": (
            reverse("device-send-command", args=[device.code]),
            owner,
            {"command": "firmware_update", "firmware_update-url": "https://example.test/fw.bin"},
        ),
        "release device": (reverse("device-release", args=[device.code]), owner, {"confirm_name": "Screen"}),
    }
    return SimpleNamespace(client=client, forms=forms, organization=organization, owner=owner)


FORM_FIELDS = [
    ("sign in", "username"),
    ("sign in", "password"),
    ("password reset", "email"),
    ("password reset confirm", "new_password1"),
    ("password change", "old_password"),
    ("password change", "new_password1"),
    ("accept invitation", "full_name"),
    ("accept invitation", "password1"),
    ("invite", "email"),
    ("invite", "role"),
    ("change role", "role"),
    ("create space", "name"),
    ("rename space", "name"),
    ("delete space", "move_devices_to"),
    ("rename device", "name"),
    ("configure device", "volume"),
    ("configure device", "display_name"),
    ("configure device", "time_zone"),
    ("send command", "command"),
    ("send command", "firmware_update-url"),
    ("release device", "confirm_name"),
]


# Passwords are never shown again; a too-long one is refused by the form as a whole: it does not
# match its confirmation, or the sign-in (or old password) is wrong. So is a too-long e-mail
# address at sign-in (refused as a wrong sign-in, the address kept).
PASSWORDS = {
    ("sign in", "password"),
    ("password reset confirm", "new_password1"),
    ("password change", "old_password"),
    ("password change", "new_password1"),
    ("accept invitation", "password1"),
}
REFUSED_BY_THE_WHOLE_FORM = PASSWORDS | {("sign in", "username")}
# Chosen from a list, not typed: nothing typed to keep.
CHOICES = {
    ("invite", "role"),
    ("change role", "role"),
    ("delete space", "move_devices_to"),
    ("configure device", "time_zone"),
    ("send command", "command"),
}
# Buttons with no form page of their own: the refusal is a message above the page they return to.
REFUSAL_MESSAGES = {
    ("change role", "role"): "Choose one of the roles.",
    ("send command", "command"): "has no such command; choose one of its commands.",
}


def _submit(portal, form_name, field, value):
    """POST the form with `field` spoiled (redirects followed); the answer, and whether the
    database changed."""
    url, user, valid = portal.forms[form_name]
    if user is None:
        portal.client.logout()
    else:
        portal.client.force_login(user)
    url = url() if callable(url) else url
    before = database_state()
    response = portal.client.post(url, valid | {field: value}, follow=True)
    return response, database_state() != before


@pytest.mark.parametrize("kind", BAD_VALUES)
@pytest.mark.parametrize(("form_name", "field"), FORM_FIELDS)
def test_bad_input_is_a_field_error_or_shown_escaped(portal, form_name, field, kind):
    """Empty, too long or NUL: refused by the form's own error on that field (or, where noted
    above, by the whole form or a message), nothing stored or cut, what was typed kept. Unicode
    and HTML: a field error, or stored and shown escaped."""
    response, changed = _submit(portal, form_name, field, BAD_VALUES[kind])
    assert response.status_code in (200, 400), f"{form_name}.{field} with {kind} input: {response.status_code}"
    assert SCRIPT not in response.text
    if kind not in ("empty", "long", "nul"):
        return
    assert not changed, f"{form_name}.{field} with {kind} input was stored"
    text = response.content.decode()
    if (form_name, field) in REFUSAL_MESSAGES:
        assert REFUSAL_MESSAGES[form_name, field] in text
    elif kind == "long" and (form_name, field) in REFUSED_BY_THE_WHOLE_FORM:
        assert _form_errors(text), f"{form_name} with a long {field}: no error of the form"
    else:
        assert _field_error(text, field), f"{form_name}.{field} with {kind} input: no error on the field"
    if kind == "long" and (form_name, field) not in PASSWORDS | CHOICES:
        assert f'value="{BAD_VALUES["long"]}"' in text, f"{form_name}.{field}: the long value was not kept"


def _field_error(text, name):
    """The error the form shows on its field `name` (crispy's feedback under the input), or None."""
    found = re.search(rf'id="error_\d+_id_{re.escape(name)}"[^>]*>(.*?)</(?:p|span)>', text, re.S)
    return found and re.sub(r"<[^>]+>", "", found.group(1)).strip()


def _form_errors(text):
    """Every error the form shows: on its fields, and about the whole form."""
    on_fields = re.findall(r'id="error_\d+_id_[^"]+"', text)
    whole = re.findall(r'<div class="alert alert-block alert-danger">\s*<ul class="m-0">\s*<li>', text)
    return on_fields + whole


def test_a_space_named_with_html_is_stored_as_typed_and_shown_escaped(portal):
    response, _ = _submit(portal, "create space", "name", SCRIPT)
    assert Space.objects.filter(organization=portal.organization, name=SCRIPT).exists()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in response.text


def test_a_space_named_with_right_to_left_marks_and_emoji_is_stored_as_typed(portal):
    _submit(portal, "create space", "name", BAD_VALUES["unicode"])
    assert Space.objects.filter(organization=portal.organization, name=BAD_VALUES["unicode"].strip()).exists()


def test_bad_audit_log_filters_are_field_errors(portal):
    portal.client.force_login(portal.owner)
    for value in BAD_VALUES.values():
        response = portal.client.get(
            reverse("audit-log", args=[portal.organization.code]),
            {"action": value, "actor": value, "since": value, "until": value},
        )
        assert response.status_code == 200
        assert SCRIPT not in response.text


def test_bad_identifiers_in_the_claim_wizard_are_field_errors_and_kept(client, organization, owner, space):
    """The wizard's identifiers step, walked with each bad value: an error on the identifier
    fields, what was typed kept, nothing claimed; never a 500."""
    cache.clear()
    model = organization.connected_vendors.get().device_models.get()
    client.force_login(owner)
    url = reverse("claim-device", args=[space.code])
    step = f"claim_{space.code.hex}-current_step"
    for kind, value in BAD_VALUES.items():
        client.get(url)
        client.post(url, {step: "model", "model-device_model": model.pk})
        before = database_state()
        response = client.post(
            url, {step: "identifiers", "identifiers-serial_number": value, "identifiers-mac_address": value}
        )
        assert response.status_code == 200, kind
        assert SCRIPT not in response.text
        text = response.content.decode()
        assert _field_error(text, "identifiers-serial_number") or _field_error(text, "identifiers-mac_address"), kind
        if kind == "long":
            assert f'value="{value}"' in text, "the long identifiers were not kept"
        assert database_state() == before, kind


def test_a_bad_name_in_the_claim_wizard_is_a_field_error_and_kept(client, organization, owner, space):
    """The wizard's last step, walked with each bad name after good identifiers: an error on the
    name, what was typed kept, nothing claimed (unicode and HTML names are claimed as typed)."""
    cache.clear()
    model = organization.connected_vendors.get().device_models.get()
    client.force_login(owner)
    url = reverse("claim-device", args=[space.code])
    step = f"claim_{space.code.hex}-current_step"
    for kind in ("empty", "long", "nul"):
        identity = ApprovedIdentityFactory(device_model=model)
        client.get(url)
        client.post(url, {step: "model", "model-device_model": model.pk})
        typed = {"identifiers-serial_number": identity.identifier_1, "identifiers-mac_address": identity.identifier_2}
        client.post(url, {step: "identifiers", **typed})
        before = database_state()
        response = client.post(url, {step: "name", "name-name": BAD_VALUES[kind]})
        text = response.content.decode()
        assert _field_error(text, "name-name"), kind
        if kind == "long":
            assert f'value="{BAD_VALUES[kind]}"' in text, "the long name was not kept"
        assert database_state() == before, kind


# Property-based: arbitrary text in every field of every portal form is either valid (and then
# free of NUL characters, which PostgreSQL cannot store) or a field error, never an exception.
PORTAL_FORMS = [
    (RenameDeviceForm, {}),
    (ReleaseDeviceForm, {"device": SimpleNamespace(name="Screen")}),
    (DeviceNameForm, {}),
    (RoleForm, {}),
    (SignUpForm, {"email": "someone@example.test"}),
    (SpaceNameForm, {}),
    (AuditFilterForm, {"actors": [("someone@example.test", "someone@example.test")]}),
]


@pytest.mark.parametrize(("form_class", "form_kwargs"), PORTAL_FORMS, ids=lambda value: getattr(value, "__name__", ""))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=400))
def test_any_text_in_any_field_is_valid_or_a_field_error(form_class, form_kwargs, text):
    form = form_class(dict.fromkeys(form_class.base_fields, text), **form_kwargs)
    if form.is_valid():
        assert all("\x00" not in str(value) for value in form.cleaned_data.values())
    else:
        assert set(form.errors) <= set(form_class.base_fields) | {"__all__"}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.text(max_size=120))
def test_any_space_name_is_created_or_refused_with_a_message(portal, name):
    portal.client.force_login(portal.owner)
    response = portal.client.post(reverse("space-create", args=[portal.organization.code]), {"name": name})
    assert response.status_code in (200, 302)
    if response.status_code == 302:
        space = Space.objects.get(code=response["Location"].rstrip("/").rsplit("/", 1)[-1])
        assert space.name == name.strip()
    else:
        assert response.context["form"].errors["name"]


@pytest.mark.django_db
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=400))
def test_any_text_in_declared_settings_or_identifiers_is_valid_or_a_field_error(device_model, text):
    """The forms built from data: a model's settings and its claiming method's identifiers."""
    for form in (
        DeclaredValuesForm(dict.fromkeys(["volume", "display_name", "time_zone"], text), declarations=HUB_SETTINGS),
        IdentifiersForm(dict.fromkeys(["serial_number", "mac_address"], text), device_model=device_model),
    ):
        if form.is_valid():
            assert all("\x00" not in str(value) for value in form.cleaned_data.values())
        else:
            assert set(form.errors) <= set(form.fields) | {"__all__"}
