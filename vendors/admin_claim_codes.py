"""Claim codes in the vendor admin: the page of an issue of generated codes with its two one-time
downloads, and the "Re-issue claim codes" action on approved identities. The rules are in
vendors/code_issues.py; this module only asks them and renders."""

from django.contrib import admin, messages
from django.http import HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.text import slugify
from django.views.decorators.http import require_POST

from portal.links import portal_origin

from . import code_issues  # by module: its limits are read when used
from .admin_scoping import VendorScopedAdmin
from .code_files import CodeFileError
from .label_sheets import codes_csv, label_sheet_pdf
from .models import ClaimCodeIssue


@admin.register(ClaimCodeIssue)
class ClaimCodeIssueAdmin(VendorScopedAdmin):
    list_display = ["__str__", "device_model", "status", "created_at", "expires_at"]
    list_filter = ["status", "reason"]
    list_select_related = ["device_model__vendor"]

    def get_urls(self):
        wrap = self.admin_site.admin_view
        download = require_POST(self.download_view)
        return [
            path("<path:object_id>/codes/", wrap(download), {"kind": "csv"}, name="vendors_claimcodeissue_csv"),
            path("<path:object_id>/labels/", wrap(download), {"kind": "labels"}, name="vendors_claimcodeissue_labels"),
            *super().get_urls(),
        ]

    def has_add_permission(self, request):
        return False  # codes are issued by an import or the re-issue action

    def has_change_permission(self, request, obj=None):
        return False

    def change_view(self, request, object_id, form_url="", extra_context=None):
        """The issue's page: what it holds and, while the codes wait, the downloads left."""
        issue = self.get_object(request, object_id)
        return self.render_object_page(
            request,
            "admin/vendors/claim_code_issue.html",
            issue,
            str(issue),
            issue=issue,
            labels_offered=code_issues.labels_offered(issue),
            label_sheet_max_units=code_issues.LABEL_SHEET_MAX_UNITS,
            csv_url=reverse("admin:vendors_claimcodeissue_csv", args=[issue.pk]),
            labels_url=reverse("admin:vendors_claimcodeissue_labels", args=[issue.pk]),
        )

    def download_view(self, request, object_id, kind):
        issue = self.get_object(request, object_id)
        try:
            source = code_issues.take_download(issue, kind, actor=request.user)
        except CodeFileError:
            self.message_user(
                request,
                "The file of these claim codes cannot be decrypted (it was altered, or the portal's secret "
                "key changed since they were issued); nothing was downloaded. Re-issue the units' claim "
                "codes to get new ones.",
                messages.ERROR,
            )
            return redirect("admin:vendors_claimcodeissue_change", issue.pk)
        if source is None:
            self.message_user(
                request,
                "That download was already taken, or the codes were destroyed: they cannot be read back. "
                "Re-issue the units' claim codes to get new ones.",
                messages.ERROR,
            )
            return redirect("admin:vendors_claimcodeissue_change", issue.pk)
        origin = portal_origin(request)
        records = code_issues.issue_records(issue, source)
        name = slugify(f"{issue.device_model.vendor.slug}-{issue.device_model.slug}-claim-codes-{issue.pk}")
        if kind == "csv":
            response = StreamingHttpResponse(codes_csv(issue, records, origin), content_type="text/csv; charset=utf-8")
            response["Content-Disposition"] = f'attachment; filename="{name}.csv"'
        else:
            response = HttpResponse(label_sheet_pdf(issue, records, origin), content_type="application/pdf")
            response["Content-Disposition"] = f'attachment; filename="{name}-labels.pdf"'
        return response


@admin.action(
    description="Re-issue claim codes (the old ones stop working: the units' firmware must get the new code too)",
    permissions=["approve"],
)
def reissue(model_admin, request, queryset):
    """New claim codes for the selected units of claim-code models, offered once on an issue page."""
    try:
        issues = code_issues.reissue_claim_codes(queryset, actor=request.user)
    except ValueError as exc:
        model_admin.message_user(request, str(exc), messages.ERROR)
        return None
    if not issues:
        model_admin.message_user(
            request,
            "None of the selected units is of a model whose claiming method requires claim codes.",
            messages.WARNING,
        )
        return None
    links = format_html_join(
        ", ",
        '<a href="{}">{}</a>',
        ((reverse("admin:vendors_claimcodeissue_change", args=[issue.pk]), issue) for issue in issues),
    )
    model_admin.message_user(
        request,
        format_html(
            "New claim codes issued; their old codes no longer match, so the units' firmware must get the new "
            "code too (a unit sends its code when it activates). Download them once: {}.",
            links,
        ),
        messages.SUCCESS,
    )
    if len(issues) == 1:
        return redirect("admin:vendors_claimcodeissue_change", issues[0].pk)
    return None
