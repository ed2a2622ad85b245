"""The forms of the claim wizard's steps (vendor, model, identifiers, name) and of the device
page and the dashboard's bulk actions.

Each wizard step form renders through crispy-forms without its own <form> tag: the wizard
template wraps the step in one form with the wizard's management form and its navigation buttons.
"""

from crispy_forms.helper import FormHelper
from django import forms
from django.core.exceptions import ValidationError
from django.utils.html import escape

from vendors.claim_codes import ClaimCodeError, HashedClaimCode, normalize_claim_code
from vendors.declarations import form_field
from vendors.models import DeviceModel, Vendor

from .claims import CLAIM_CODE_FIELD, CLAIM_CODE_LABEL


class WizardStepForm(forms.Form):
    """A wizard step rendered by crispy-forms inside the wizard's own <form>."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.helper = FormHelper()
        self.helper.form_tag = False


class VendorChoiceForm(WizardStepForm):
    """Step 1, for organizations connected to several vendors: who supplied the device."""

    vendor = forms.ModelChoiceField(
        queryset=Vendor.objects.none(),
        widget=forms.RadioSelect,
        empty_label=None,
        label="Vendor",
        help_text="The manufacturer who supplied the device.",
        error_messages={"required": "Choose the vendor who supplied the device."},
    )

    def __init__(self, *args, organization, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["vendor"].queryset = organization.connected_vendors.order_by("name")


class DeviceModelChoiceForm(WizardStepForm):
    """Step 2: which of the vendor's models the device is."""

    device_model = forms.ModelChoiceField(
        queryset=DeviceModel.objects.none(),
        widget=forms.RadioSelect,
        empty_label=None,
        label="Model",
        help_text="The model name is printed on the device's label and on its box.",
        error_messages={"required": "Choose the model of the device."},
    )

    def __init__(self, *args, vendor, **kwargs):
        super().__init__(*args, **kwargs)
        # The claiming method's fields come along, so the identifier step and the claim
        # read them without further queries.
        self.fields["device_model"].queryset = (
            DeviceModel.objects.filter(vendor=vendor)
            .select_related("vendor", "claiming_method")
            .prefetch_related("claiming_method__fields")
            .order_by("name")
        )


class SecretTextInput(forms.TextInput):
    """A text input that never writes its value back into the page.

    A claim code is a secret: a page re-rendered after an error (kept by the browser's history and
    cache, seen on a shared screen) must not carry it, not even one that failed its check digit,
    which is one digit or one swap away from the real code.
    """

    def format_value(self, value):
        return None


class ClaimCodeField(forms.Field):
    """The claim code, typed with any spaces or dashes, cleaned into the HashedClaimCode the claim
    compares: the wizard keeps that hash between its steps, never the code. A HashedClaimCode as
    the value comes from the wizard's own storage (a client's POST holds text only) and is kept."""

    widget = SecretTextInput

    def widget_attrs(self, widget):
        return super().widget_attrs(widget) | {"maxlength": "40"}

    def to_python(self, value):
        if isinstance(value, HashedClaimCode) or value in self.empty_values:
            return value or None
        try:
            return HashedClaimCode.of(normalize_claim_code(value))
        except ClaimCodeError as error:
            raise ValidationError(error.message) from error


class IdentifiersForm(WizardStepForm):
    """Step 3: the identifiers the model's claiming method asks for, one field each, all mandatory,
    and the Claim code for a method that requires one.

    Each value is checked with its IdentifierField's own rule, so a malformed one gets a field
    error saying what format is expected before the claim is attempted; a claim code whose check
    digit fails gets a typo error here, before it could count as a failed claim.
    """

    def __init__(self, *args, device_model, **kwargs):
        super().__init__(*args, **kwargs)
        self.identifier_fields = device_model.claiming_method.ordered_fields() if device_model else []
        for identifier in self.identifier_fields:
            self.fields[identifier.key] = forms.CharField(
                label=identifier.label,
                # Django and crispy-forms render help texts as HTML; the vendor's is text.
                help_text=escape(identifier.help_text),
                max_length=200,
                error_messages={"required": f"Enter the {identifier.label}."},
                widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
            )
        if device_model and device_model.claiming_method.requires_claim_code:
            self.fields[CLAIM_CODE_FIELD] = ClaimCodeField(
                label=CLAIM_CODE_LABEL,
                help_text="The 11 digits printed on the label next to the QR code, e.g. 1234-567-8901.",
                error_messages={"required": "Enter the claim code."},
                widget=SecretTextInput(attrs={"autocomplete": "off", "spellcheck": "false", "inputmode": "numeric"}),
            )

    def clean(self):
        cleaned = super().clean()
        for identifier in self.identifier_fields:
            if identifier.key in cleaned:
                try:
                    identifier.clean_value(cleaned[identifier.key])
                except ValidationError as error:
                    self.add_error(identifier.key, error)
        return cleaned


class DeviceNameForm(WizardStepForm):
    """Step 4: the name the device goes by in the space."""

    name = forms.CharField(
        max_length=100,
        label="Device name",
        help_text="A descriptive name, e.g. “Screen on auditorium wall”.",
        error_messages={"required": "Give the device a name."},
    )


class ConfirmForm(forms.Form):
    """A button that needs no input (the CSRF token is checked by the middleware)."""


class RenameDeviceForm(forms.Form):
    name = forms.CharField(max_length=100, label="Name")


class MoveDeviceForm(forms.Form):
    space = forms.ModelChoiceField(queryset=None, label="Move to space", empty_label=None)

    def __init__(self, *args, spaces, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["space"].queryset = spaces
        self.fields["space"].to_field_name = "code"


class DeclaredValuesForm(forms.Form):
    """A form whose fields come from a model's declarations (settings or a command's arguments)."""

    def __init__(self, *args, declarations, **kwargs):
        super().__init__(*args, **kwargs)
        for decl in declarations:
            self.fields[decl["key"]] = form_field(decl)
            if "default" in decl and decl["key"] not in self.initial:
                self.initial[decl["key"]] = decl["default"]
        self.helper = FormHelper()
        self.helper.form_tag = False


class ReleaseDeviceForm(forms.Form):
    confirm_name = forms.CharField(label="Type the device name to confirm", max_length=100)

    def __init__(self, *args, device, **kwargs):
        super().__init__(*args, **kwargs)
        self.device = device

    def clean_confirm_name(self):
        typed = self.cleaned_data["confirm_name"]
        if typed.strip() != self.device.name:
            raise forms.ValidationError(f"Type the device name exactly: {self.device.name}")
        return typed


class BulkActionForm(forms.Form):
    """The dashboard's bulk bar: selected devices of one space, moved or sent one command."""

    MOVE, COMMAND = "move", "command"

    devices = forms.ModelMultipleChoiceField(
        queryset=None, to_field_name="code", error_messages={"required": "Select at least one device."}
    )
    action = forms.ChoiceField(choices=[(MOVE, "Move to space"), (COMMAND, "Send command")])
    space = forms.ModelChoiceField(queryset=None, to_field_name="code", required=False, label="Space")
    command = forms.ChoiceField(choices=[], required=False, label="Command")

    def __init__(self, *args, devices, spaces, commands, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["devices"].queryset = devices
        self.fields["space"].queryset = spaces
        self.fields["command"].choices = [(name, label) for name, label in commands]

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("action") == self.MOVE and not cleaned.get("space"):
            self.add_error("space", "Choose the space to move the devices to.")
        if cleaned.get("action") == self.COMMAND and not cleaned.get("command"):
            self.add_error("command", "Choose the command to send.")
        return cleaned
