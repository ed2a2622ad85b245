from django.contrib import admin

from .models import ActivationOperation, Device, DeviceEvent


@admin.register(Device)
class DeviceAdmin(admin.ModelAdmin):
    list_display = ["__str__", "device_model", "status", "organization", "space", "last_seen_at"]
    list_filter = ["status", "device_model"]
    list_select_related = ["device_model", "organization", "space", "identity"]
    raw_id_fields = ["identity", "claimed_by"]
    readonly_fields = ["code", "key_hash", "activated_at", "last_seen_at", "claimed_at"]
    show_full_result_count = False


@admin.register(DeviceEvent)
class DeviceEventAdmin(admin.ModelAdmin):
    list_display = ["device", "kind", "actor", "created_at"]
    list_filter = ["kind"]
    list_select_related = ["device", "actor"]
    raw_id_fields = ["device", "actor", "space"]


@admin.register(ActivationOperation)
class ActivationOperationAdmin(admin.ModelAdmin):
    """Read-only: what devices asked and why an activation failed (support looks here)."""

    list_display = ["id", "vendor_slug", "model_slug", "status", "error_code", "created_at", "finished_at"]
    list_filter = ["status", "error_code"]
    search_fields = ["=id", "vendor_slug", "model_slug"]
    show_full_result_count = False

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
