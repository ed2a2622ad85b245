from django import forms

from spaces.models import Space


class AlertPreferenceForm(forms.Form):
    enabled = forms.BooleanField(required=False, label="E-mail me when devices go offline and come back")
    spaces = forms.ModelMultipleChoiceField(
        queryset=Space.objects.none(),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="None ticked: every space, including new ones.",
    )

    def __init__(self, *args, organization, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["spaces"].queryset = Space.objects.filter(organization=organization).order_by("name")
