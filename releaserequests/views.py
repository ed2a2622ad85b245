"""Release request pages: the requester's list and request form, the holder's release and decline.
Thin: the tenant check (accounts.access), then one rule of rules.py."""

from django.contrib import messages
from django.contrib.auth.mixins import LoginRequiredMixin
from django.db.models import F
from django.shortcuts import get_object_or_404, redirect, render
from django.views import View

from accounts.access import MANAGE, READ, allows, membership_for, organization_membership
from devices import claim_labels
from devices.forms import ReleaseDeviceForm
from devices.views import ConfirmedDeviceActionView

from . import proofs, rules
from .forms import ReleaseRequestForm
from .models import ReleaseRequest, unit_description

LISTED = 200


def received_request(user, code, ability=MANAGE):
    """A request to an organization of `user` about a device it still holds, and the membership:
    404 for anyone else's (or once the device is gone), 403 if the role does not allow `ability`."""
    release_request = get_object_or_404(
        ReleaseRequest.objects.select_related("device__organization", "device__space", "device__device_model").filter(
            holding_organization__memberships__user=user, device__organization_id=F("holding_organization_id")
        ),
        code=code,
    )
    return release_request, membership_for(user, release_request.holding_organization_id, ability)


def made_request(user, code, ability=MANAGE):
    """A request made by an organization of `user`, and the membership (404 for anyone else's, 403 by role)."""
    release_request = get_object_or_404(
        ReleaseRequest.objects.select_related("device__identity", "device__device_model__vendor").filter(
            requesting_organization__memberships__user=user
        ),
        code=code,
    )
    return release_request, membership_for(user, release_request.requesting_organization_id, ability)


class ReleaseRequestListView(LoginRequiredMixin, View):
    """The organization's release requests and their answers, as the requester sees them."""

    def get(self, request, code):
        membership = organization_membership(request.user, READ, code=code)
        made = (
            ReleaseRequest.objects.filter(requesting_organization=membership.organization)
            .select_related("device__identity", "device__device_model")
            .order_by("-created_at")[:LISTED]
        )
        context = {
            "organization": membership.organization,
            "release_requests": made,
            "can_manage": allows(membership, MANAGE),
        }
        return render(request, "releaserequests/list.html", context)


class AskReleaseView(LoginRequiredMixin, View):
    """Ask the holder of the unit whose claim was just refused (the proof kept, proofs.py) to release it."""

    def dispatch(self, request, *args, **kwargs):
        if request.user.is_authenticated:
            self.membership = organization_membership(request.user, MANAGE, code=kwargs["code"])
        return super().dispatch(request, *args, **kwargs)

    def get(self, request, code):
        return self.render(ReleaseRequestForm())

    def post(self, request, code):
        form = ReleaseRequestForm(request.POST)
        proof = proofs.kept(request, self.membership.organization)
        if proof is None:
            return self.render(form, status=400)
        if form.is_valid():
            device, claim_code_hash = proof
            try:
                rules.request_release(
                    device=device,
                    organization=self.membership.organization,
                    actor=request.user,
                    message=form.cleaned_data["message"],
                    claim_code_hash=claim_code_hash,
                )
            except rules.ReleaseRequestError as refusal:
                form.add_error(None, refusal.message)
            else:
                proofs.forget(request)
                messages.success(request, "Your request was sent to the owner. You will hear their answer by e-mail.")
                return redirect("release-requests", code=code)
        return self.render(form, status=400)

    def render(self, form, status=200):
        proof = proofs.kept(self.request, self.membership.organization)
        context = {
            "organization": self.membership.organization,
            "form": form,
            "unit": unit_description(proof[0]) if proof else None,
        }
        return render(self.request, "releaserequests/ask.html", context, status=status)


class ReleaseForRequestView(ConfirmedDeviceActionView):
    """The holder's Release of a request: the device's release confirmation, in answer to it."""

    template_name = "devices/device_release.html"

    def get_device(self):
        self.release_request, membership = received_request(self.request.user, self.kwargs["code"])
        return self.release_request.device, membership

    def build_form(self, device, data=None):
        return ReleaseDeviceForm(data, device=device)

    def perform(self, device, form):
        space, name = device.space, device.name
        rules.release_for_request(self.release_request, actor=self.request.user)
        messages.success(self.request, f"“{name}” was released, its history deleted and its key revoked.")
        return redirect("space-dashboard", code=space.code)

    def render(self, device, form, status=200):
        context = {
            "device": device,
            "organization": device.organization,
            "form": form,
            "release_request": self.release_request,
            "claim_window_hours": int(rules.CLAIM_WINDOW.total_seconds() // 3600),
        }
        return render(self.request, self.template_name, context, status=status)


class DeclineRequestView(LoginRequiredMixin, View):
    """The holder's Decline: the device stays, the requester hears the answer."""

    def dispatch(self, request, *args, **kwargs):
        if request.user.is_authenticated:
            self.release_request, _ = received_request(request.user, kwargs["code"])
        return super().dispatch(request, *args, **kwargs)

    def post(self, request, code):
        try:
            rules.decline_request(self.release_request, actor=request.user)
        except rules.ReleaseRequestError as refusal:
            messages.error(request, refusal.message)
        else:
            messages.success(request, "The request is declined; the device stays yours.")
        return redirect("device-detail", code=self.release_request.device.code)


class ClaimReleasedView(LoginRequiredMixin, View):
    """The requester's Claim it now: the released unit, proven when asked, opens the claim flow's
    space choice (claim_labels) with its values and code kept, as a scanned label would."""

    def dispatch(self, request, *args, **kwargs):
        if request.user.is_authenticated:
            self.release_request, _ = made_request(request.user, kwargs["code"])
        return super().dispatch(request, *args, **kwargs)

    def get(self, request, code):
        release_request = self.release_request
        if not release_request.may_claim_now():
            messages.info(request, "This device is not waiting for your organization to claim it.")
            return redirect("release-requests", code=release_request.requesting_organization.code)
        claim_labels.keep_unit(request, release_request.device.identity, release_request.claim_code_hash)
        return redirect("claim-label-space")
