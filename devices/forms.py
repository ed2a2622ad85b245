"""The forms of the claim wizard's steps: vendor, model, identifiers, name.

Each step form renders through crispy-forms without its own <form> tag: the wizard template
wraps the step in one form with the wizard's management form and its navigation buttons.
"""

from crispy_forms.helper import FormHelper
from django import forms
from django.core.exceptions import ValidationError

from vendors.models import DeviceModel, Vendor


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


class IdentifiersForm(WizardStepForm):
    """Step 3: the identifiers the model's claiming method asks for, one field each, all mandatory.

    Each value is checked with its IdentifierField's own rule, so a malformed one gets a field
    error saying what format is expected before the claim is attempted.
    """

    def __init__(self, *args, device_model, **kwargs):
        super().__init__(*args, **kwargs)
        self.identifier_fields = device_model.claiming_method.ordered_fields() if device_model else []
        for identifier in self.identifier_fields:
            self.fields[identifier.key] = forms.CharField(
                label=identifier.label,
                help_text=identifier.help_text,
                max_length=200,
                error_messages={"required": f"Enter the {identifier.label}."},
                widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
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
