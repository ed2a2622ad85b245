from crispy_forms.helper import FormHelper
from django import forms

from vendors.declarations import form_field


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
