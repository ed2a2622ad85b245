from django.contrib.auth.mixins import LoginRequiredMixin
from django.db.models import Count, Q
from django.http import StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.utils import timezone
from django.views.generic import ListView, TemplateView, View

from accounts.access import MANAGE, OPERATE, allows, get_for_user, membership_for
from accounts.models import Organization
from accounts.views import OrganizationMixin
from devices.exports import device_list_csv
from devices.models import offline_condition, online_condition
from devices.search import DeviceSearchForm, OrganizationDeviceSearchForm
from devices.views import bulk_action_form

from .models import Space

CURRENT_ORGANIZATION_KEY = "current_organization"


class HomeView(LoginRequiredMixin, View):
    """Send the user to the overview of the organization they used last (or their first)."""

    def get(self, request):
        memberships = request.user.memberships.select_related("organization").order_by("organization__name")
        remembered = request.session.get(CURRENT_ORGANIZATION_KEY)
        chosen = next((m for m in memberships if str(m.organization.code) == remembered), None)
        chosen = chosen or memberships.first()
        if chosen is None:
            return TemplateView.as_view(template_name="spaces/no_organization.html")(request)
        return redirect("organization-overview", code=chosen.organization.code)


class OrganizationOverviewView(LoginRequiredMixin, TemplateView):
    """The Organization Overview: its spaces, each with its device counts by status, in one query.

    Every device in a space is claimed, so the statuses worth counting are those of the
    dashboard: online, offline, and awaiting first connection (claimed, never activated).
    """

    template_name = "spaces/organization_overview.html"

    def get_context_data(self, **kwargs):
        organization = get_object_or_404(
            Organization.objects.filter(memberships__user=self.request.user), code=self.kwargs["code"]
        )
        membership = membership_for(self.request.user, organization.pk)
        if self.request.session.get(CURRENT_ORGANIZATION_KEY) != str(organization.code):
            # Only when it changes: a session written is a write to PostgreSQL (portal.sessions).
            self.request.session[CURRENT_ORGANIZATION_KEY] = str(organization.code)
        now = timezone.now()
        spaces = organization.spaces.annotate(
            device_count=Count("devices"),
            online_count=Count("devices", filter=online_condition(now, prefix="devices__")),
            offline_count=Count("devices", filter=offline_condition(now, prefix="devices__")),
            awaiting_count=Count("devices", filter=Q(devices__activated_at__isnull=True)),
        ).order_by("name")
        return super().get_context_data(
            organization=organization,
            membership=membership,
            spaces=spaces,
            memberships=self.request.user.memberships.select_related("organization"),
            **kwargs,
        )


class DeviceListMixin:
    """A searched, filtered, sorted and paginated device list (all in the query string, so a view
    can be bookmarked); htmx asks for the result list alone (the template's #device-results
    partial) as the person types."""

    context_object_name = "devices"
    paginate_by = 50
    SORT_COLUMNS = [("name", "Name"), ("model", "Vendor · model"), ("last_seen", "Connection")]

    def get_template_names(self):
        htmx = self.request.htmx
        if htmx and not htmx.history_restore_request:
            return [f"{self.template_name}#device-results"]
        return [self.template_name]

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        values = self.search_form.cleaned_data if self.search_form.is_valid() else {}
        return context | {
            "search_form": self.search_form,
            "searching": any(values.get(name) for name in ("q", "connection", "status", "model", "space")),
            "sort_columns": sort_columns(self.SORT_COLUMNS, values.get("sort") or "name"),
        }


class SpaceDashboardView(LoginRequiredMixin, DeviceListMixin, ListView):
    """A space's devices (see DeviceListMixin), with the + Claim Device button for those who may
    claim and the bulk bar for those who may operate."""

    template_name = "spaces/space_dashboard.html"

    def get_queryset(self):
        self.space, self.membership = get_for_user(
            Space.objects.select_related("organization"), self.request.user, code=self.kwargs["code"]
        )
        self.search_form = DeviceSearchForm(self.request.GET, organization=self.space.organization)
        return self.search_form.search(self.space.devices.with_related())

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        return context | {
            "space": self.space,
            "organization": self.space.organization,
            "membership": self.membership,
            "can_claim": allows(self.membership, MANAGE),
            "can_operate": allows(self.membership, OPERATE),
            "bulk_form": (
                bulk_action_form(self.space, shown_devices=context["devices"])
                if allows(self.membership, OPERATE)
                else None
            ),
        }


class OrganizationDevicesView(OrganizationMixin, DeviceListMixin, ListView):
    """The devices of every space of the organization (see DeviceListMixin), with a space filter
    and the filtered list's CSV export."""

    template_name = "spaces/organization_devices.html"

    def get_queryset(self):
        self.search_form = OrganizationDeviceSearchForm(self.request.GET, organization=self.organization)
        return self.search_form.search(self.organization.devices.with_related())


class OrganizationDevicesCsvView(OrganizationMixin, View):
    """The organization-wide list, filtered as on the page, as CSV: streamed a chunk at a time."""

    def get(self, request, code):
        search_form = OrganizationDeviceSearchForm(request.GET, organization=self.organization)
        devices = search_form.search(self.organization.devices.with_related())
        response = StreamingHttpResponse(device_list_csv(devices), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="devices-{self.organization.code}.csv"'
        return response


def sort_columns(columns, current):
    """The sortable column headers: each links to its sort, or to the reverse if it is the current one."""
    headers = []
    for key, label in columns:
        state = "ascending" if current == key else "descending" if current == f"-{key}" else ""
        headers.append({"label": label, "link": f"-{key}" if state == "ascending" else key, "current": state})
    return headers
