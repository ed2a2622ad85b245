from django.contrib import admin

from .models import Device, DeviceEvent


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
