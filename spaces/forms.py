from django import forms

from .models import Space


class SpaceNameForm(forms.Form):
    name = forms.CharField(max_length=Space._meta.get_field("name").max_length)


class DeleteSpaceForm(forms.Form):
    """Confirms a deletion; for a space with devices, asks where to move them first."""

    move_devices_to = forms.ModelChoiceField(
        queryset=Space.objects.none(), required=False, label="Move its devices to", empty_label=None
    )

    def __init__(self, *args, space, device_count, **kwargs):
        super().__init__(*args, **kwargs)
        self.device_count = device_count
        if device_count:
            self.fields["move_devices_to"].queryset = (
                Space.objects.filter(organization_id=space.organization_id).exclude(pk=space.pk).order_by("name")
            )
            self.fields["move_devices_to"].required = True
        else:
            del self.fields["move_devices_to"]
