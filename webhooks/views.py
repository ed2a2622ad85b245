"""The Webhooks page of an organization (owners and admins). Thin views: parse, call the rule
(webhooks/endpoints.py), render. A new or rolled secret is shown in the answer to its POST only."""

from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect, render
from django.views.generic import View

from accounts.access import MANAGE
from accounts.views import OrganizationMixin

from . import endpoints
from .forms import EndpointChangeForm, EndpointForm
from .models import Delivery, Endpoint, EventName


class WebhooksMixin(OrganizationMixin):
    ability = MANAGE

    def page(self):
        return redirect("webhooks", code=self.organization.code)

    def endpoint(self):
        return get_object_or_404(Endpoint, organization=self.organization, code=self.kwargs["endpoint"])

    def render_page(self, form=None, new_secret=None):
        """The page: the organization's endpoints, each with its events and state, their recent
        deliveries, the form that adds one, and `new_secret` (endpoint, secret) shown this once."""
        context = {
            "organization": self.organization,
            "membership": self.membership,
            "form": form or EndpointForm(),
            "endpoints": self.organization.webhooks.all(),
            "event_choices": EventName.choices,
            "deliveries": endpoints.recent_deliveries(self.organization),
            "new_secret": new_secret,
        }
        response = render(self.request, "webhooks/webhooks.html", context)
        if new_secret:  # not kept by the browser: shown once
            response["Cache-Control"] = "no-store"
        return response


class WebhooksView(WebhooksMixin, View):
    """The Webhooks page; a POST adds an endpoint and shows its secret."""

    def get(self, request, *args, **kwargs):
        return self.render_page()

    def post(self, request, *args, **kwargs):
        form = EndpointForm(request.POST)
        if not form.is_valid():
            return self.render_page(form)
        created = form.created_once(
            lambda: endpoints.add_endpoint(self.organization, actor=request.user, **form.entered())
        )
        if created is None:  # the page that showed the secret, reloaded
            return self.render_page(form)
        return self.render_page(new_secret=created)


class RollSecretView(WebhooksMixin, View):
    """Give an endpoint a new secret, shown on the page this once."""

    http_method_names = ["post"]

    def post(self, request, *args, **kwargs):
        endpoint = self.endpoint()
        return self.render_page(new_secret=(endpoint, endpoints.roll_secret(endpoint, actor=request.user)))


class ChangeEndpointView(WebhooksMixin, View):
    http_method_names = ["post"]

    def post(self, request, *args, **kwargs):
        endpoint = self.endpoint()
        form = EndpointChangeForm(request.POST)
        if not form.is_valid():
            messages.error(request, "Choose events among those listed.")
            return self.page()
        endpoints.change_endpoint(endpoint, actor=request.user, **form.cleaned_data)
        messages.success(request, f"Saved the webhook {endpoint.url}.")
        return self.page()


class PingView(WebhooksMixin, View):
    http_method_names = ["post"]

    def post(self, request, *args, **kwargs):
        endpoint = self.endpoint()
        if endpoints.send_ping(endpoint, actor=request.user) is None:
            messages.error(request, "Enable the webhook first: disabled webhooks are sent nothing.")
        else:
            messages.success(request, f"A ping event is on its way to {endpoint.url}.")
        return self.page()


class RemoveEndpointView(WebhooksMixin, View):
    http_method_names = ["post"]

    def post(self, request, *args, **kwargs):
        endpoint = self.endpoint()
        endpoints.remove_endpoint(endpoint, actor=request.user)
        messages.success(request, f"Removed the webhook {endpoint.url}.")
        return self.page()


class ResendDeliveryView(WebhooksMixin, View):
    http_method_names = ["post"]

    def post(self, request, *args, **kwargs):
        delivery = get_object_or_404(
            Delivery.objects.select_related("event", "endpoint"),
            endpoint__organization=self.organization,
            code=self.kwargs["delivery"],
        )
        endpoints.resend_delivery(delivery)
        messages.success(request, f"The {delivery.event.event} event is sent again to {delivery.endpoint.url}.")
        return self.page()
