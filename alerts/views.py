import uuid

from django.contrib import messages
from django.contrib.auth.mixins import LoginRequiredMixin
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.csrf import csrf_exempt

from accounts.models import Membership

from .forms import AlertPreferenceForm
from .preferences import UnsubscribeLinkInvalid, alert_choice, membership_from_unsubscribe_token, set_alert_preference
from .preferences import unsubscribe as unsubscribe_member


class AlertPreferencesView(LoginRequiredMixin, View):
    """The signed-in member's offline alerts, one form per organization they belong to."""

    def _memberships(self, request):
        return Membership.objects.filter(user=request.user).select_related("organization")

    def _form(self, membership, data=None):
        enabled, spaces = alert_choice(membership)
        return AlertPreferenceForm(
            data,
            organization=membership.organization,
            prefix=str(membership.organization.code),
            initial={"enabled": enabled, "spaces": spaces},
        )

    def get(self, request):
        forms = [(membership, self._form(membership)) for membership in self._memberships(request)]
        return render(request, "alerts/preferences.html", {"forms": forms})

    def post(self, request):
        try:
            code = uuid.UUID(request.POST.get("organization", ""))
        except ValueError as exc:
            raise Http404 from exc
        membership = get_object_or_404(self._memberships(request), organization__code=code)
        form = self._form(membership, request.POST)
        if not form.is_valid():
            forms = [(m, form if m.pk == membership.pk else self._form(m)) for m in self._memberships(request)]
            return render(request, "alerts/preferences.html", {"forms": forms}, status=400)
        set_alert_preference(membership, enabled=form.cleaned_data["enabled"], spaces=form.cleaned_data["spaces"])
        messages.success(request, f"Offline alerts of {membership.organization.name} saved.")
        return redirect("alert-preferences")


# The mail program's one-click POST (RFC 8058) carries no CSRF token; the signed link is the proof.
@method_decorator(csrf_exempt, name="dispatch")
class UnsubscribeView(View):
    """GET asks (link checkers open links without meaning to unsubscribe); POST turns alerts off."""

    def _membership(self, request, token):
        try:
            return membership_from_unsubscribe_token(token), None
        except UnsubscribeLinkInvalid as error:
            return None, render(request, "alerts/unsubscribe.html", {"error": str(error)}, status=400)

    def get(self, request, token):
        membership, refused = self._membership(request, token)
        return refused or render(request, "alerts/unsubscribe.html", {"membership": membership})

    def post(self, request, token):
        membership, refused = self._membership(request, token)
        if refused:
            return refused
        unsubscribe_member(membership)
        return render(request, "alerts/unsubscribe.html", {"membership": membership, "done": True})
