from django.contrib.auth.mixins import LoginRequiredMixin
from django.db.models import Count, Q
from django.shortcuts import get_object_or_404, redirect
from django.views.generic import ListView, TemplateView, View

from accounts.access import MANAGE, allows, get_for_user, membership_for
from accounts.models import Organization
from devices.models import Device

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
    """The Organization Overview: its spaces, each with device counts by status."""

    template_name = "spaces/organization_overview.html"

    def get_context_data(self, **kwargs):
        organization = get_object_or_404(
            Organization.objects.filter(memberships__user=self.request.user), code=self.kwargs["code"]
        )
        membership = membership_for(self.request.user, organization.pk)
        self.request.session[CURRENT_ORGANIZATION_KEY] = str(organization.code)
        by_status = {
            f"{status}_count": Count("devices", filter=Q(devices__status=status)) for status in Device.Status.values
        }
        spaces = organization.spaces.annotate(device_count=Count("devices"), **by_status).order_by("name")
        return super().get_context_data(
            organization=organization,
            membership=membership,
            spaces=spaces,
            memberships=self.request.user.memberships.select_related("organization"),
            **kwargs,
        )


class SpaceDashboardView(LoginRequiredMixin, ListView):
    """A space's devices, paginated, with the + Claim Device button for those who may claim."""

    template_name = "spaces/space_dashboard.html"
    context_object_name = "devices"
    paginate_by = 50

    def get_queryset(self):
        self.space, self.membership = get_for_user(
            Space.objects.select_related("organization"), self.request.user, code=self.kwargs["code"]
        )
        return self.space.devices.with_related().order_by("name", "pk")

    def get_context_data(self, **kwargs):
        return super().get_context_data(
            space=self.space,
            organization=self.space.organization,
            membership=self.membership,
            can_claim=allows(self.membership, MANAGE),
            **kwargs,
        )
