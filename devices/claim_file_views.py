"""Claim devices from a file: pick the model, download its template, upload the file, read the
report row by row, then Claim N devices (devices/claim_files.py, devices/bulk_claims.py)."""

from django import forms
from django.contrib import messages
from django.contrib.auth.mixins import LoginRequiredMixin
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views import View

from portal.csv import csv_lines
from vendors.models import DeviceModel

from . import claim_files
from .bulk_claims import check_claims, claim_devices
from .claim_views import ManagedSpaceMixin
from .claims import ClaimError


class ClaimFileForm(forms.Form):
    device_model = forms.ModelChoiceField(
        queryset=DeviceModel.objects.none(),
        label="Model",
        empty_label="Choose the model of the devices",
        error_messages={"required": "Choose the model of the devices."},
    )
    file = forms.FileField(
        label="CSV file",
        help_text=f"UTF-8, one device a line, at most {claim_files.MAX_ROWS_TEXT} devices.",
        error_messages={"required": "Choose the CSV file to upload."},
    )

    def __init__(self, *args, device_models, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["device_model"].queryset = device_models
        self.fields["device_model"].label_from_instance = lambda model: f"{model.vendor.name} · {model.name}"


class ClaimFileMixin(LoginRequiredMixin, ManagedSpaceMixin):
    def device_models(self):
        """The models of the organization's connected vendors, with what the checks read."""
        return (
            DeviceModel.objects.filter(vendor__in=self.space.organization.connected_vendors.all())
            .select_related("vendor", "claiming_method")
            .prefetch_related("claiming_method__fields")
            .order_by("vendor__name", "name")
        )

    def render_page(self, form, *, report=None, rows=None, batch=None, refused_claim=False, error=None, status=200):
        context = {
            "space": self.space,
            "organization": self.space.organization,
            "form": form,
            "report": _report_lines(report, rows) if report else None,
            "claimable": sum(1 for row in report.rows if row.ok) if report and not refused_claim else 0,
            "failed": len(report.failed) if report else 0,
            "batch": batch,
            "refused_claim": refused_claim,
            "error": error,
        }
        return render(self.request, "devices/claim_file.html", context, status=status)


class ClaimFileView(ClaimFileMixin, View):
    """The page: the form, and the report of an uploaded file with its Claim N devices button."""

    def get(self, request, code):
        return self.render_page(ClaimFileForm(device_models=self.device_models()))

    def post(self, request, code):
        form = ClaimFileForm(request.POST, request.FILES, device_models=self.device_models())
        if not form.is_valid():
            return self.render_page(form, status=400)
        device_model = form.cleaned_data["device_model"]
        try:
            rows = claim_files.read_claim_file(form.cleaned_data["file"], space=self.space, device_model=device_model)
            report = check_claims(rows, organization=self.space.organization, actor=request.user)
        except (claim_files.FileRefused, ClaimError) as refused:
            form.add_error("file" if isinstance(refused, claim_files.FileRefused) else None, refused.message)
            return self.render_page(form, status=400)
        good = {row.line for row in report.rows if row.ok}
        batch = claim_files.keep_checked_rows(
            request.session, self.space, device_model, [row for row in rows if row.line in good]
        )
        return self.render_page(form, report=report, rows=rows, batch=batch)


class ClaimFileConfirmView(ClaimFileMixin, View):
    """Claim N devices: claim_devices on the rows kept at the check, checked again under locks."""

    def get(self, request, code):
        # Nothing to confirm without the form (an address typed, a reload): back to the page.
        return redirect("claim-file", code=self.space.code)

    def post(self, request, code):
        rows = claim_files.kept_rows(request.session, self.space, request.POST.get("batch", ""), self.device_models())
        if rows is None:
            form = ClaimFileForm(device_models=self.device_models())
            stale = "This report is no longer current (another file was checked since): upload the file again."
            return self.render_page(form, error=stale, status=400)
        form = ClaimFileForm(device_models=self.device_models(), initial={"device_model": rows[0].device_model.pk})
        try:
            result = claim_devices(rows, organization=self.space.organization, actor=request.user)
        except ClaimError as refused:
            return self.render_page(form, error=refused.message, status=400)
        claim_files.forget_rows(request.session, self.space)
        if result.failed:
            return self.render_page(form, report=result, rows=rows, refused_claim=True, status=409)
        # The claimed devices (result.devices) are the ones a device.claimed event tells of.
        messages.success(request, f"{len(result.devices)} devices are claimed and now in {self.space.name}.")
        return redirect("space-dashboard", code=self.space.code)


class ClaimFileTemplateView(ClaimFileMixin, View):
    """The CSV template of the model chosen on the page (?device_model=...)."""

    def get(self, request, code):
        device_model = self.device_models().filter(pk=_int(request.GET.get("device_model"))).first()
        if device_model is None:
            messages.error(request, "Choose the model whose template to download.")
            return redirect("claim-file", code=self.space.code)
        response = HttpResponse(
            "".join(csv_lines([claim_files.template_columns(device_model)])), content_type="text/csv"
        )
        response["Content-Disposition"] = (
            f'attachment; filename="{device_model.vendor.slug}-{device_model.slug}-claim.csv"'
        )
        return response


def _int(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _report_lines(report, rows):
    """The report's rows with the values typed on their line, failed rows first."""
    by_line = {row.line: row for row in rows}
    lines = []
    for result in report.rows:
        row = by_line[result.line]
        lines.append(
            {
                "line": result.line,
                "ok": result.ok,
                "result": result.result,
                "message": result.message,
                "identifiers": ", ".join(value for value in row.identifiers.values() if value),
                "name": row.name,
            }
        )
    return sorted(lines, key=lambda line: (line["ok"], line["line"]))
