from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Q
from django.forms.models import BaseInlineFormSet
from django.http import StreamingHttpResponse
from django.shortcuts import redirect
from django.urls import path, reverse
from django.utils.text import slugify
from django.views.decorators.http import require_POST

from accounts.access import ALL_VENDORS, admin_vendor_scope
from accounts.admin_mixins import ReadOnlyAdminMixin

from .admin_claim_codes import reissue
from .admin_scoping import VendorScopedAdmin, scoped
from .exports import serial_list_csv
from .identifiers import MAX_IDENTIFIER_FIELDS
from .import_staging import FileRefused, check_upload_size, expected_header
from .imports import cancel_import, request_import, resume_import
from .models import (
    ApprovedIdentity,
    ClaimingMethod,
    DeviceModel,
    IdentifierField,
    ImportJob,
    ProductionBatch,
    Vendor,
    VendorAuditEntry,
    VendorStaff,
)
from .tasks import validate_job_file

LOCKED_LAYOUT = ("key", "position", "normalization")


class FixedOnceUnitsExistAdmin(VendorScopedAdmin):
    """An admin whose object's slug (and `fixed_fields`) are read-only once it has approved units,
    since units, the device API and signatures name it by them; the form says so."""

    fixed_fields = ("slug",)
    fixed_note = ""

    def get_readonly_fields(self, request, obj=None):
        fixed = self.fixed_fields if obj is not None and obj.has_units() else ()
        return [*super().get_readonly_fields(request, obj), *fixed]

    def get_prepopulated_fields(self, request, obj=None):
        readonly = self.get_readonly_fields(request, obj)
        return {field: sources for field, sources in self.prepopulated_fields.items() if field not in readonly}

    def get_fieldsets(self, request, obj=None):
        fieldsets = super().get_fieldsets(request, obj)
        if obj is None or not obj.has_units():
            return fieldsets
        (name, options), *others = fieldsets
        return [(name, {**options, "description": self.fixed_note}), *others]


class IdentifierFieldFormSet(BaseInlineFormSet):
    def clean(self):
        super().clean()
        kept = [form for form in self.forms if form.has_changed() or form.instance.pk]
        kept = [form for form in kept if not (self.can_delete and self._should_delete_form(form))]
        if len(kept) > MAX_IDENTIFIER_FIELDS:
            raise ValidationError(f"A claiming method has at most {MAX_IDENTIFIER_FIELDS} identifier fields.")
        if not kept:
            raise ValidationError("A claiming method needs at least one identifier field.")
        if self.instance.has_units():
            for form in self.forms:
                added = form.has_changed() and not form.instance.pk
                deleted = form.instance.pk and self.can_delete and self._should_delete_form(form)
                if added or deleted:
                    raise ValidationError(
                        "Units are already approved with this method: fields cannot be added or removed. "
                        "Labels, help texts, patterns and formats can change."
                    )


class IdentifierFieldInline(admin.TabularInline):
    model = IdentifierField
    formset = IdentifierFieldFormSet
    extra = 0
    max_num = MAX_IDENTIFIER_FIELDS
    fields = ["position", "key", "label", "help_text", "normalization", "pattern", "format_hint"]

    def _allowed(self, request, obj, action):
        scope = admin_vendor_scope(request.user)
        if scope is ALL_VENDORS:
            return getattr(super(), f"has_{action}_permission")(request, obj)
        if scope is None:
            return False
        return action == "view" or obj is None or obj.vendor_id == scope

    def has_view_permission(self, request, obj=None):
        return self._allowed(request, obj, "view")

    def has_add_permission(self, request, obj=None):
        return self._allowed(request, obj, "add")

    def has_change_permission(self, request, obj=None):
        return self._allowed(request, obj, "change")

    def has_delete_permission(self, request, obj=None):
        return self._allowed(request, obj, "delete")

    def get_readonly_fields(self, request, obj=None):
        # `obj` is the claiming method: stored identifiers, serial lists and the API follow its layout.
        fixed = LOCKED_LAYOUT if obj is not None and obj.has_units() else ()
        return [*super().get_readonly_fields(request, obj), *fixed]


@admin.register(ClaimingMethod)
class ClaimingMethodAdmin(FixedOnceUnitsExistAdmin):
    list_display = ["name", "slug", "vendor"]
    list_select_related = ["vendor"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [IdentifierFieldInline]
    staff_may = frozenset({"view", "add", "change"})
    # Units approved with the method hold claim codes or not: turning the requirement on would lock
    # them out, turning it off would drop the proof their labels carry.
    fixed_fields = ("slug", "requires_claim_code")
    fixed_note = (
        "Units are approved with this method: its slug is fixed, and so are its fields' keys, positions and "
        "normalization (the stored identifiers, serial lists and the device API follow them) and whether it "
        "requires a claim code (units hold one or not); fields cannot be added or removed. Labels, help texts, "
        "patterns and formats can change."
    )

    def get_exclude(self, request, obj=None):
        # Vendor staff's methods are their vendor's; the field would offer nothing else.
        return ["vendor"] if admin_vendor_scope(request.user) is not ALL_VENDORS else []

    def has_change_permission(self, request, obj=None):
        scope = admin_vendor_scope(request.user)
        if obj is not None and scope is not ALL_VENDORS and obj.vendor_id != scope:
            return False  # a shared method, or (never listed) another vendor's
        return super().has_change_permission(request, obj)

    def save_model(self, request, obj, form, change):
        scope = admin_vendor_scope(request.user)
        if scope is not ALL_VENDORS:
            obj.vendor_id = scope
        super().save_model(request, obj, form, change)


@admin.register(Vendor)
class VendorAdmin(FixedOnceUnitsExistAdmin):
    list_display = ["name", "slug", "support_email", "support_url"]
    prepopulated_fields = {"slug": ["name"]}
    search_fields = ["name"]
    staff_may = frozenset({"view", "change"})
    fixed_note = (
        "Units of this vendor are approved: its slug is fixed, since devices send it when they activate, "
        "factory signatures cover it and activation operations are filed under it."
    )


class SerialListUploadForm(forms.Form):
    file = forms.FileField(help_text="CSV, UTF-8; the first line names the identifier fields.")

    def clean_file(self):
        upload = self.cleaned_data["file"]
        try:
            check_upload_size(upload.size)
        except FileRefused as refused:
            raise forms.ValidationError(refused.message) from refused
        return upload


@admin.register(DeviceModel)
class DeviceModelAdmin(FixedOnceUnitsExistAdmin):
    list_display = ["name", "vendor", "slug", "claiming_method", "heartbeat_interval", "attestation"]
    list_filter = ["vendor"]
    list_select_related = ["vendor", "claiming_method"]
    prepopulated_fields = {"slug": ["name"]}
    staff_may = frozenset({"view", "add", "change"})
    change_form_template = "admin/vendors/devicemodel/change_form.html"
    fixed_note = (
        "Units of this model are approved: its slug is fixed, since devices send it when they activate "
        "and factory signatures cover it. Its claiming method cannot change either."
    )

    def get_list_filter(self, request):
        return self.list_filter if admin_vendor_scope(request.user) is ALL_VENDORS else []

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("<path:object_id>/upload/", wrap(self.upload_view), name="vendors_devicemodel_upload"),
            path("<path:object_id>/export/", wrap(self.export_view), name="vendors_devicemodel_export"),
            *super().get_urls(),
        ]

    def upload_view(self, request, object_id):
        """Upload a serial list: the file is validated by a task, then the job page shows the report."""
        device_model = self.get_object(request, object_id)
        if not self.has_change_permission(request, device_model):
            raise PermissionDenied
        posted = request.method == "POST"
        form = SerialListUploadForm(request.POST, request.FILES) if posted else SerialListUploadForm()
        if posted and form.is_valid():
            upload = form.cleaned_data["file"]
            with transaction.atomic():
                job = ImportJob.objects.create(
                    device_model=device_model, created_by=request.user, source_name=upload.name[:255], file=upload
                )
                validate_job_file.delay_on_commit(job.pk)
            return redirect("admin:vendors_importjob_change", job.pk)
        return self.render_object_page(
            request,
            "admin/vendors/upload.html",
            device_model,
            f"Upload a serial list for {device_model}",
            form=form,
            header=",".join(expected_header(device_model)),
            takes_claim_codes=device_model.claiming_method.requires_claim_code,
        )

    def export_view(self, request, object_id):
        device_model = self.get_object(request, object_id)
        response = StreamingHttpResponse(serial_list_csv(device_model), content_type="text/csv; charset=utf-8")
        name = slugify(f"{device_model.vendor.slug}-{device_model.slug}-serial-list")
        response["Content-Disposition"] = f'attachment; filename="{name}.csv"'
        return response


class ScopedDeviceModelFilter(admin.SimpleListFilter):
    title = "model"
    parameter_name = "model"

    def lookups(self, request, model_admin):
        return [(str(m.pk), str(m)) for m in scoped(DeviceModel.objects.all(), request.user)]

    def queryset(self, request, queryset):
        # Only a model the filter offers: anything else (not a number, another vendor's) is ignored.
        if self.value() in {value for value, _ in self.lookup_choices}:
            return queryset.filter(device_model_id=self.value())
        return queryset


class DeviceStatusFilter(admin.SimpleListFilter):
    title = "device status"
    parameter_name = "device_status"

    def lookups(self, request, model_admin):
        return [("unregistered", "Unregistered"), ("registered", "Registered"), ("claimed", "Claimed")]

    def queryset(self, request, queryset):
        if self.value() == "unregistered":
            # A unit that never connected may have no device row at all.
            return queryset.filter(Q(device__isnull=True) | Q(device__status="unregistered"))
        if self.value() in {"registered", "claimed"}:
            return queryset.filter(device__status=self.value())
        return queryset


@admin.register(ApprovedIdentity)
class ApprovedIdentityAdmin(VendorScopedAdmin):
    list_display = [
        "__str__",
        "device_model",
        "status",
        "device_status",
        "last_seen",
        "claiming_organization",
        "claimed_at",
    ]
    list_filter = [ScopedDeviceModelFilter, DeviceStatusFilter, "status"]
    list_select_related = ["device_model", "device__organization"]
    search_fields = ["identifier_1"]  # shows the search box; get_search_results does the matching
    search_help_text = "Any identifier, typed in any format (e.g. a MAC address with or without separators)."
    readonly_fields = ["device_model", "identifier_1", "identifier_2", "identifier_3", "status", "revoked_at"]
    actions = ["revoke", "reapprove", reissue]
    show_full_result_count = False
    list_per_page = 100

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term:
            return queryset, False
        model_ids = scoped(DeviceModel.objects.all(), request.user).values_list("pk", flat=True)
        return queryset.matching(term, device_model_ids=model_ids), False

    def has_approve_permission(self, request):
        scope = admin_vendor_scope(request.user)
        return scope is not None

    @admin.action(description="Revoke the selected units", permissions=["approve"])
    def revoke(self, request, queryset):
        changed = queryset.revoke()
        self.message_user(request, f"Revoked {changed} unit(s).", messages.SUCCESS)

    @admin.action(description="Approve the selected units again", permissions=["approve"])
    def reapprove(self, request, queryset):
        changed = queryset.reapprove()
        self.message_user(request, f"Approved {changed} unit(s) again.", messages.SUCCESS)

    @admin.display(description="device status")
    def device_status(self, identity):
        device = getattr(identity, "device", None)
        return device.get_status_display() if device else "Unregistered"

    @admin.display(description="last seen")
    def last_seen(self, identity):
        device = getattr(identity, "device", None)
        return device.last_seen_at if device and device.last_seen_at else "—"

    @admin.display(description="claimed by")
    def claiming_organization(self, identity):
        device = getattr(identity, "device", None)
        return device.organization.name if device and device.organization else "—"

    @admin.display(description="claimed at")
    def claimed_at(self, identity):
        device = getattr(identity, "device", None)
        return device.claimed_at if device and device.claimed_at else "—"


@admin.register(ImportJob)
class ImportJobAdmin(VendorScopedAdmin):
    list_display = ["source_name", "device_model", "status", "rows_total", "rows_bad", "rows_imported", "created_at"]
    list_filter = ["status"]
    list_select_related = ["device_model"]
    actions = ["resume"]

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("<path:object_id>/status/", wrap(self.status_view), name="vendors_importjob_status"),
            path("<path:object_id>/decide/", wrap(require_POST(self.decide_view)), name="vendors_importjob_decide"),
            *super().get_urls(),
        ]

    def _render_job(self, request, template, job):
        return self.render_object_page(
            request,
            template,
            job,
            f"Import of {job.source_name}",
            job=job,
            status_url=reverse("admin:vendors_importjob_status", args=[job.pk]),
            decide_url=reverse("admin:vendors_importjob_decide", args=[job.pk]),
        )

    def change_view(self, request, object_id, form_url="", extra_context=None):
        """The job page: progress while it runs, then the report and the decision."""
        job = self.get_object(request, object_id)
        return self._render_job(request, "admin/vendors/import_job.html", job)

    def status_view(self, request, object_id):
        """The part of the job page htmx polls while the job runs."""
        job = self.get_object(request, object_id)
        return self._render_job(request, "admin/vendors/import_job_status.html", job)

    def decide_view(self, request, object_id):
        job = self.get_object(request, object_id)
        if request.POST.get("decision") == "import":
            if request_import(job):
                self.message_user(request, f"Importing {job.rows_good} rows.", messages.SUCCESS)
        elif request.POST.get("decision") == "cancel" and cancel_import(job):
            self.message_user(request, "Cancelled: nothing was imported.", messages.INFO)
        return redirect("admin:vendors_importjob_change", job.pk)

    def has_add_permission(self, request):
        return False  # jobs start from a model's upload page or the import_identities command

    def has_resume_permission(self, request):
        return admin_vendor_scope(request.user) is not None

    @admin.action(description="Resume the selected imports (after a worker stopped)", permissions=["resume"])
    def resume(self, request, queryset):
        resumed = sum(resume_import(job) for job in queryset)
        self.message_user(request, f"Sent {resumed} import(s) to the workers again.", messages.SUCCESS)


@admin.register(VendorAuditEntry)
class VendorAuditEntryAdmin(ReadOnlyAdminMixin, VendorScopedAdmin):
    # The log is written by release_device() and vendors/code_issues.py only; nobody edits history.
    deletable = False
    list_display = ["created_at", "action", "identifiers", "device_model", "actor", "reason"]
    list_filter = ["action"]
    list_select_related = ["device_model", "actor"]
    search_fields = ["identifiers"]
    readonly_fields = ["vendor", "device_model", "identifiers", "action", "actor", "reason", "created_at"]


@admin.register(VendorStaff)
class VendorStaffAdmin(admin.ModelAdmin):
    list_display = ["user", "vendor"]
    autocomplete_fields = ["user"]


@admin.register(ProductionBatch)
class ProductionBatchAdmin(VendorScopedAdmin):
    """Vendor staff register their factory batches' public keys and revoke a batch whose key leaked."""

    staff_may = frozenset({"view", "add", "change"})
    list_display = ["name", "device_model", "created_at", "revoked_at"]
    list_filter = [ScopedDeviceModelFilter]  # Django's own filter would offer every vendor's models
    list_select_related = ["device_model"]
    readonly_fields = ["revoked_at"]
    actions = ["revoke_batches"]

    @admin.action(description="Revoke selected batches")
    def revoke_batches(self, request, queryset):
        for batch in queryset:
            batch.revoke()
        self.message_user(request, f"Revoked {queryset.count()} batch(es).")
