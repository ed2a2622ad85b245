from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect
from django.urls import path
from django.views.decorators.http import require_POST

from accounts.access import ALL_VENDORS, admin_vendor_scope
from accounts.admin_mixins import ReadOnlyAdminMixin
from vendors.admin_scoping import VendorScopedAdmin, scoped
from vendors.models import ApprovedIdentity, DeviceModel

from .actions import DeviceActionError, allow_reactivation, release_device
from .models import ActivationOperation, Device, DeviceEvent


class ForceReleaseForm(forms.Form):
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}),
        max_length=1000,
        help_text="Why the unit is taken from its organization; kept in the vendor audit log.",
    )

    def clean_reason(self):
        reason = self.cleaned_data["reason"].strip()
        if not reason:
            raise forms.ValidationError("Say why the device is released.")
        return reason


@admin.register(Device)
class DeviceAdmin(VendorScopedAdmin):
    """Devices of the vendor's models: read-only for vendor staff, plus the support tools."""

    list_display = ["__str__", "device_model", "status", "organization", "claimed_at", "last_seen_at"]
    list_filter = ["status"]
    list_select_related = ["device_model", "organization", "space", "identity"]
    raw_id_fields = ["identity", "claimed_by"]
    people_fields = ("claimed_by",)
    # The address a key was issued from is the unit's network, seen by the vendor's own device API
    # (as the activation operations are): staff see it, as they see the organization, never a person.
    readonly_fields = ["code", "key_hash", "activated_at", "key_issued_from", "last_seen_at", "claimed_at"]
    search_fields = ["identity__identifier_1"]
    show_full_result_count = False
    change_form_template = "admin/devices/device/change_form.html"

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term:
            return queryset, False
        model_ids = scoped(DeviceModel.objects.all(), request.user).values_list("pk", flat=True)
        return queryset.filter(identity__in=ApprovedIdentity.objects.matching(term, device_model_ids=model_ids)), False

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("<path:object_id>/force-release/", wrap(self.force_release_view), name="devices_device_force_release"),
            path(
                "<path:object_id>/allow-reactivation/",
                wrap(require_POST(self.allow_reactivation_view)),
                name="devices_device_allow_reactivation",
            ),
            *super().get_urls(),
        ]

    def has_support_permission(self, request):
        return admin_vendor_scope(request.user) is not None

    def force_release_view(self, request, object_id):
        """Release a claimed device as its customer would (its key dies with it), with a reason for
        the vendor audit log."""
        device = self.get_object(request, object_id)
        if not self.has_support_permission(request):
            raise PermissionDenied
        form = ForceReleaseForm(request.POST) if request.method == "POST" else ForceReleaseForm()
        if device.status != Device.Status.CLAIMED:
            self.message_user(request, "This device is not claimed: there is nothing to release.", messages.WARNING)
            return redirect("admin:devices_device_change", device.pk)
        if request.method == "POST" and form.is_valid():
            try:
                release_device(device, actor=request.user, reason=form.cleaned_data["reason"])
            except DeviceActionError as refusal:  # released or claimed anew since the page was read
                self.message_user(request, refusal.message, messages.WARNING)
            else:
                self.message_user(
                    request, f"{device} was released; its history is deleted and its key revoked.", messages.SUCCESS
                )
            return redirect("admin:devices_device_change", device.pk)
        return self.render_object_page(
            request, "admin/devices/force_release.html", device, f"Force release {device}", form=form
        )

    def allow_reactivation_view(self, request, object_id):
        device = self.get_object(request, object_id)
        if not self.has_support_permission(request):
            raise PermissionDenied
        try:
            allow_reactivation(device, actor=request.user, by_vendor_staff=True)
        except DeviceActionError as refusal:
            self.message_user(request, refusal.message, messages.WARNING)
        else:
            self.message_user(request, f"{device} may activate again within 24 hours.", messages.SUCCESS)
        return redirect("admin:devices_device_change", device.pk)

    def get_list_filter(self, request):
        return self.list_filter + (["device_model"] if admin_vendor_scope(request.user) is ALL_VENDORS else [])


@admin.register(DeviceEvent)
class DeviceEventAdmin(admin.ModelAdmin):
    list_display = ["device", "kind", "actor", "created_at"]
    list_filter = ["kind"]
    list_select_related = ["device", "actor"]
    raw_id_fields = ["device", "actor", "space"]


@admin.register(ActivationOperation)
class ActivationOperationAdmin(ReadOnlyAdminMixin, VendorScopedAdmin):
    """Read-only: what devices asked and why an activation failed (support looks here). The device
    is only told not_approved for any failed proof; the refusal reason says which check failed."""

    staff_may = frozenset({"view"})
    list_display = [
        "id",
        "vendor_slug",
        "model_slug",
        "status",
        "error_code",
        "refusal_reason",
        "client_address",
        "created_at",
        "finished_at",
    ]
    list_filter = ["status", "error_code", "refusal_reason"]
    # A keyed hash of a secret: of no use to support, and no business of the page.
    exclude = ["claim_code_hash"]
    search_fields = ["=id", "vendor_slug", "model_slug"]
    show_full_result_count = False
