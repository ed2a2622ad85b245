from django.contrib import admin

from .models import ApprovedIdentity, ClaimingMethod, DeviceModel, IdentifierField, ProductionBatch, Vendor, VendorStaff


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


@admin.register(ProductionBatch)
class ProductionBatchAdmin(admin.ModelAdmin):
    """Vendor staff register their factory batches' public keys and revoke a batch whose key leaked.

    A vendor's staff member sees and picks only their own vendor's models.
    """

    list_display = ["name", "device_model", "created_at", "revoked_at"]
    list_filter = ["device_model"]
    list_select_related = ["device_model"]
    readonly_fields = ["revoked_at"]
    actions = ["revoke_batches"]

    @staticmethod
    def _vendor_of(request):
        staff = getattr(request.user, "vendor_staff", None)
        return None if request.user.is_superuser or staff is None else staff.vendor_id

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        vendor_id = self._vendor_of(request)
        return queryset if vendor_id is None else queryset.filter(device_model__vendor_id=vendor_id)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        vendor_id = self._vendor_of(request)
        if db_field.name == "device_model" and vendor_id is not None:
            kwargs["queryset"] = DeviceModel.objects.filter(vendor_id=vendor_id)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    @admin.action(description="Revoke selected batches")
    def revoke_batches(self, request, queryset):
        for batch in queryset:
            batch.revoke()
        self.message_user(request, f"Revoked {queryset.count()} batch(es).")
