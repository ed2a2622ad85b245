"""Bad input on every portal form: empty, 10,000 characters, unicode (right-to-left marks, emoji,
NUL) and HTML/script. Each gives a field error or is stored and shown escaped; never a 500."""

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

from .factories import PASSWORD, ClaimedDeviceFactory, SpaceFactory, UserFactory

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


def _submit(portal, form_name, field, value):
    url, user, valid = portal.forms[form_name]
    if user is None:
        portal.client.logout()
    else:
        portal.client.force_login(user)
    url = url() if callable(url) else url
    return portal.client.post(url, valid | {field: value}, follow=True)


@pytest.mark.parametrize("kind", BAD_VALUES)
@pytest.mark.parametrize(("form_name", "field"), FORM_FIELDS)
def test_bad_input_is_a_field_error_or_shown_escaped(portal, form_name, field, kind):
    response = _submit(portal, form_name, field, BAD_VALUES[kind])
    assert response.status_code in (200, 400), f"{form_name}.{field} with {kind} input: {response.status_code}"
    assert SCRIPT not in response.text
    if kind in ("empty", "nul"):
        assert _shows_an_error(response.text), f"{form_name}.{field} with {kind} input: no error shown"


def _shows_an_error(text):
    return "invalid-feedback" in text or "alert-danger" in text


def test_a_space_named_with_html_is_stored_as_typed_and_shown_escaped(portal):
    response = _submit(portal, "create space", "name", SCRIPT)
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
    """The wizard's identifier and name steps, walked with each bad value; never a 500."""
    cache.clear()
    model = organization.connected_vendors.get().device_models.get()
    client.force_login(owner)
    url = reverse("claim-device", args=[space.code])
    step = f"claim_{space.code.hex}-current_step"
    for kind, value in BAD_VALUES.items():
        client.get(url)
        client.post(url, {step: "model", "model-device_model": model.pk})
        response = client.post(
            url, {step: "identifiers", "identifiers-serial_number": value, "identifiers-mac_address": value}
        )
        assert response.status_code == 200, kind
        assert SCRIPT not in response.text
        assert _shows_an_error(response.text), f"identifiers with {kind} input: no error shown"


# Property-based: arbitrary text in every field of every portal form is either valid (and then
# free of NUL characters, which PostgreSQL cannot store) or a field error, never an exception.
PORTAL_FORMS = [
    (RenameDeviceForm, {}),
    (ReleaseDeviceForm, {"device": SimpleNamespace(name="Screen")}),
    (DeviceNameForm, {}),
    (RoleForm, {}),
    (SignUpForm, {"email": "someone@example.test"}),
    (SpaceNameForm, {}),
    (AuditFilterForm, {"actor_emails": ["someone@example.test"]}),
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
