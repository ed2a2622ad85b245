"""Vendor scoping for the admin, in one place (OpenWISP's MultitenantAdminMixin pattern).

A staff user linked to a vendor (VendorStaff) sees and changes only that vendor's rows: the
list querysets, the foreign-key choices and the object URLs all go through `scoped()`, so
another vendor's object answers 404, the same as a missing one. A superuser sees everything;
any other user, nothing.

Vendor staff are another tenant to the customers: they learn which organization claimed a unit
and when, never which of its people did. An admin lists the fields naming customer users in
`people_fields`; staff neither see nor filter on them.
"""

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.options import IncorrectLookupParameters
from django.core.exceptions import ValidationError
from django.db.models import Q
from django.db.models.constants import LOOKUP_SEP
from django.http import Http404, HttpResponseRedirect
from django.template.response import TemplateResponse

from accounts.access import ALL_VENDORS, admin_vendor_scope
from devices.models import ActivationOperation, Device

from .models import (
    ApprovedIdentity,
    ClaimCodeIssue,
    ClaimingMethod,
    DeviceModel,
    ImportJob,
    ProductionBatch,
    Vendor,
    VendorAuditEntry,
)

# How each vendor-owned model reaches its vendor.
VENDOR_FILTERS = {
    Vendor: lambda vendor_id: Q(pk=vendor_id),
    DeviceModel: lambda vendor_id: Q(vendor_id=vendor_id),
    # Shipped methods (no vendor) may be used by every vendor, but changed by none.
    ClaimingMethod: lambda vendor_id: Q(vendor_id=vendor_id) | Q(vendor__isnull=True),
    ApprovedIdentity: lambda vendor_id: Q(device_model__vendor_id=vendor_id),
    Device: lambda vendor_id: Q(device_model__vendor_id=vendor_id),
    ImportJob: lambda vendor_id: Q(device_model__vendor_id=vendor_id),
    ClaimCodeIssue: lambda vendor_id: Q(device_model__vendor_id=vendor_id),
    VendorAuditEntry: lambda vendor_id: Q(vendor_id=vendor_id),
    ProductionBatch: lambda vendor_id: Q(device_model__vendor_id=vendor_id),
    # Operations name their vendor by slug, as the device sent it.
    ActivationOperation: lambda vendor_id: Q(vendor_slug__in=Vendor.objects.filter(pk=vendor_id).values("slug")),
}


def scoped(queryset, user):
    """`queryset` narrowed to what `user` may see in the admin."""
    scope = admin_vendor_scope(user)
    if scope is ALL_VENDORS:
        return queryset
    if scope is None:
        return queryset.none()
    return queryset.filter(VENDOR_FILTERS[queryset.model](scope))


class VendorScopedAdmin(admin.ModelAdmin):
    """ModelAdmin whose rows, choices and object URLs are limited to the staff user's vendor.

    Vendor staff need no Django permissions: `staff_may` lists what they may do here
    ("view", "add", "change", "delete"); superusers keep Django's own permission checks.
    `people_fields` name customer users: vendor staff neither see nor filter on them.
    """

    staff_may = frozenset({"view"})
    people_fields = ()

    def get_queryset(self, request):
        return scoped(super().get_queryset(request), request.user)

    def get_object(self, request, object_id, from_field=None):
        obj = super().get_object(request, object_id, from_field)
        if obj is None:
            raise Http404("No such object among yours.")
        return obj

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        related = db_field.related_model
        if related in VENDOR_FILTERS:
            kwargs["queryset"] = scoped(kwargs.get("queryset", related._default_manager.all()), request.user)
            scope = admin_vendor_scope(request.user)
            if related is Vendor and scope is not ALL_VENDORS:
                kwargs.update(initial=scope, empty_label=None)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def get_changelist_instance(self, request):
        # PostgreSQL text cannot hold NUL: a filter or search with one would fail in the database,
        # so it gets the admin's answer to any unusable lookup (the plain list, flagged invalid).
        if any("\x00" in key + "".join(values) for key, values in request.GET.lists()):
            raise IncorrectLookupParameters("A NUL character in the query string.")
        return super().get_changelist_instance(request)

    def response_action(self, request, queryset, **kwargs):
        # Django filters the selection by pk__in as posted: a value that is no id would fail there.
        try:
            for value in request.POST.getlist(helpers.ACTION_CHECKBOX_NAME):
                self.model._meta.pk.to_python(value)
        except ValidationError:
            self.message_user(
                request, "The selection names rows that do not exist; nothing was changed.", messages.ERROR
            )
            return HttpResponseRedirect(request.get_full_path())
        return super().response_action(request, queryset, **kwargs)

    def get_fields(self, request, obj=None):
        fields = super().get_fields(request, obj)
        if admin_vendor_scope(request.user) is ALL_VENDORS:
            return fields
        return [field for field in fields if field not in self.people_fields]

    def lookup_allowed(self, lookup, value, request):
        # Django allows any lookup on a local field, e.g. ?claimed_by=<user id>.
        if admin_vendor_scope(request.user) is not ALL_VENDORS and lookup.split(LOOKUP_SEP)[0] in self.people_fields:
            return False
        return super().lookup_allowed(lookup, value, request)

    def render_object_page(self, request, template, obj, title, **extra):
        """A page of its own about one object (upload, job, force release), framed like the admin's."""
        context = {**self.admin_site.each_context(request), "title": title, "opts": self.opts, "original": obj}
        return TemplateResponse(request, template, context | extra)

    def _staff_may(self, request, action):
        scope = admin_vendor_scope(request.user)
        if scope is ALL_VENDORS:
            return None  # Django's permissions decide
        return scope is not None and action in self.staff_may

    def has_module_permission(self, request):
        allowed = self._staff_may(request, "view")
        return super().has_module_permission(request) if allowed is None else allowed

    def has_view_permission(self, request, obj=None):
        allowed = self._staff_may(request, "view")
        return super().has_view_permission(request, obj) if allowed is None else allowed

    def has_add_permission(self, request, *args):
        allowed = self._staff_may(request, "add")
        return super().has_add_permission(request, *args) if allowed is None else allowed

    def has_change_permission(self, request, obj=None):
        allowed = self._staff_may(request, "change")
        return super().has_change_permission(request, obj) if allowed is None else allowed

    def has_delete_permission(self, request, obj=None):
        allowed = self._staff_may(request, "delete")
        return super().has_delete_permission(request, obj) if allowed is None else allowed
