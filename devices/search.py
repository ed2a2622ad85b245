"""Finding devices in a list of an organization's devices: the search box, its filters and sort.

The space dashboard and the organization-wide list both parse the query with DeviceSearchForm
and run it with search_devices, so a term means the same thing everywhere.
"""

from django import forms
from django.db.models import Case, F, IntegerField, Q, Value, When
from django.utils import timezone

from vendors.models import ApprovedIdentity, DeviceModel

from .models import Device, offline_condition, online_condition

ONLINE, OFFLINE, NEVER_CONNECTED = "online", "offline", "never"
CONNECTION_CHOICES = [(ONLINE, "Online"), (OFFLINE, "Offline"), (NEVER_CONNECTED, "Never connected")]

# Sort keys as they appear in the URL ("-" first for descending), and the columns they order by.
SORTS = {
    "name": ["name"],
    "model": ["device_model__name", "name"],
    "last_seen": ["last_seen_at", "name"],
}
SORT_CHOICES = [(key, key) for key in SORTS] + [(f"-{key}", f"-{key}") for key in SORTS]
MAX_TERM_LENGTH = 100


class DeviceSearchForm(forms.Form):
    """The search box and filters above a device list, read from the query string (all optional;
    a value that is not a choice is an error shown beside the filter, never a 500)."""

    q = forms.CharField(required=False, max_length=MAX_TERM_LENGTH, strip=True, label="Search")
    connection = forms.ChoiceField(required=False, choices=[("", "Any connection"), *CONNECTION_CHOICES])
    status = forms.ChoiceField(required=False, choices=[("", "Any status"), *Device.Status.choices])
    model = forms.ModelChoiceField(required=False, queryset=None, empty_label="Any model")
    sort = forms.ChoiceField(required=False, choices=SORT_CHOICES)

    def __init__(self, data, *, organization):
        super().__init__(data)
        self.fields["model"].queryset = organization_device_models(organization)

    def search(self, devices):
        """`devices` narrowed and ordered as asked; unfiltered (sorted by name) when the form is invalid."""
        values = self.cleaned_data if self.is_valid() else {}
        return search_devices(
            devices,
            term=values.get("q", ""),
            connection=values.get("connection", ""),
            status=values.get("status", ""),
            device_model=values.get("model"),
            sort=values.get("sort") or "name",
            device_models=self.fields["model"].queryset,
        )


class OrganizationDeviceSearchForm(DeviceSearchForm):
    """The organization-wide list's search: the same box and filters, plus the space (by its code)."""

    space = forms.ModelChoiceField(required=False, queryset=None, empty_label="Any space", to_field_name="code")
    field_order = ["q", "space"]

    def __init__(self, data, *, organization):
        super().__init__(data, organization=organization)
        self.fields["space"].queryset = organization.spaces.order_by("name")

    def search(self, devices):
        space = self.cleaned_data.get("space") if self.is_valid() else None
        return super().search(devices if space is None else devices.filter(space=space))


def organization_device_models(organization):
    """The models an organization's devices can be of: those of the vendors it is connected to."""
    return DeviceModel.objects.filter(vendor__organizations=organization).select_related("vendor").order_by("name")


def search_devices(devices, *, term="", connection="", status="", device_model=None, sort="name", device_models):
    """The devices of `devices` (already one organization's: the caller scopes, this only narrows)
    that match `term` and the filters, ordered by `sort` with exact identifier matches first.

    `term` matches a device whose name contains every word of it (any case), or whose unit has
    the term as any identifier, however it was typed: the claiming method's normalizations are
    all tried (ApprovedIdentityQuerySet.matching) against the (model, identifier) unique indexes
    of `device_models`. The identities are looked up first, in one query of their own, so that the
    device query is an OR of two indexed conditions rather than a join over every unit (the ids
    may include other organizations' units: they only ever narrow `devices`, already scoped).
    `connection` is online / offline / never (the one online rule: online_condition).
    """
    now = timezone.now()
    if connection == ONLINE:
        devices = devices.filter(online_condition(now))
    elif connection == OFFLINE:
        devices = devices.filter(offline_condition(now))
    elif connection == NEVER_CONNECTED:
        devices = devices.filter(activated_at__isnull=True)
    if status:
        devices = devices.filter(status=status)
    if device_model is not None:
        devices = devices.filter(device_model=device_model)
    exact = []
    if term:
        exact = list(
            ApprovedIdentity.objects.matching(term, device_model_ids=device_models.values_list("pk", flat=True))
            .order_by()
            .values_list("pk", flat=True)
        )
        by_name = Q()
        for word in term.split():
            by_name &= Q(name__icontains=word)
        devices = devices.filter(by_name | Q(identity_id__in=exact))
    return devices.order_by(*_ordering(sort, exact))


def _ordering(sort, exact):
    descending = sort.startswith("-")
    columns = SORTS.get(sort.removeprefix("-"), SORTS["name"])
    # Never-connected devices last either way; names are never null, so their index still orders them.
    ordering = []
    for column in columns:
        nulls_last = True if column == "last_seen_at" else None
        ordering.append(F(column).desc(nulls_last=nulls_last) if descending else F(column).asc(nulls_last=nulls_last))
    if exact:
        first = Case(When(identity_id__in=exact, then=Value(0)), default=Value(1), output_field=IntegerField())
        ordering.insert(0, first)
    return [*ordering, "pk"]


class VendorModelChoiceField(forms.ModelChoiceField):
    """A device model named `<vendor slug>/<model slug>`, as the customer API shows both (a model's
    slug is unique within its vendor only)."""

    def to_python(self, value):
        if value in self.empty_values:
            return None
        vendor, _, model = str(value).partition("/")
        found = self.queryset.filter(vendor__slug=vendor, slug=model).first()
        if found is None:
            raise forms.ValidationError(self.error_messages["invalid_choice"], code="invalid_choice")
        return found


class ApiDeviceSearchForm(OrganizationDeviceSearchForm):
    """The customer API's `GET devices` filters: the organization-wide list's, with the model named
    by its slugs rather than its database id."""

    def __init__(self, data, *, organization):
        super().__init__(data, organization=organization)
        self.fields["model"] = VendorModelChoiceField(required=False, queryset=self.fields["model"].queryset)
