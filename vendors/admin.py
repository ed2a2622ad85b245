from django.contrib import admin

from .models import ApprovedIdentity, ClaimingMethod, DeviceModel, IdentifierField, Vendor, VendorStaff


class IdentifierFieldInline(admin.TabularInline):
    model = IdentifierField
    extra = 0


@admin.register(ClaimingMethod)
class ClaimingMethodAdmin(admin.ModelAdmin):
    list_display = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [IdentifierFieldInline]


@admin.register(Vendor)
class VendorAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "support_email", "support_url"]
    prepopulated_fields = {"slug": ["name"]}
    search_fields = ["name"]


@admin.register(DeviceModel)
class DeviceModelAdmin(admin.ModelAdmin):
    list_display = ["name", "vendor", "slug", "claiming_method", "heartbeat_interval", "attestation"]
    list_filter = ["vendor"]
    prepopulated_fields = {"slug": ["name"]}


@admin.register(ApprovedIdentity)
class ApprovedIdentityAdmin(admin.ModelAdmin):
    list_display = ["__str__", "device_model", "status", "created_at"]
    list_filter = ["device_model", "status"]
    search_fields = ["identifier_1", "identifier_2", "identifier_3"]
    list_select_related = ["device_model"]
    show_full_result_count = False


@admin.register(VendorStaff)
class VendorStaffAdmin(admin.ModelAdmin):
    list_display = ["user", "vendor"]
    autocomplete_fields = ["user"]
