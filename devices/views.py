import uuid

from django.contrib import messages
from django.contrib.auth.mixins import LoginRequiredMixin
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views import View
from django.views.generic import TemplateView

from accounts.access import MANAGE, OPERATE, READ, allows, get_for_user
from releaserequests.models import ReleaseRequest
from spaces.models import Space
from vendors.models import DeviceModel

from . import actions, charts, commands, configuration, monitoring
from .forms import (
    BulkActionForm,
    ConfirmForm,
    DeclaredValuesForm,
    MoveDeviceForm,
    ReleaseDeviceForm,
    RenameDeviceForm,
)
from .models import Device

RECENT_COMMANDS = 20
RECENT_EVENTS = 50


class DeviceMixin(LoginRequiredMixin):
    """Fetches the device of the URL through the tenant check, requiring `ability`."""

    ability = READ

    def get_device(self):
        queryset = Device.objects.with_related().select_related(
            "organization", "claimed_by", "identity", "device_model__claiming_method"
        )
        return get_for_user(queryset, self.request.user, self.ability, code=self.kwargs["code"])


def _other_spaces(device):
    return Space.objects.filter(organization_id=device.organization_id).exclude(pk=device.space_id).order_by("name")


def render_device_page(request, device, membership, bound=None, status=200):
    """The device page. An action view passes `bound` = (form key, bound form) so that a refused
    form shows its errors in place, with everything typed kept."""
    bound_key, bound_form = bound or (None, None)

    def form_for(key, unbound):
        return bound_form if key == bound_key else unbound()

    version, desired = configuration.desired_configuration(device)
    # An unknown ?range= is the default range, as is its absence.
    panel = monitoring.monitoring(device, monitoring.chart_range(request.GET.get("range")))
    declarations = device.device_model  # its command and setting declarations
    context = {
        "device": device,
        "organization": device.organization,
        "membership": membership,
        "can_operate": allows(membership, OPERATE),
        "can_manage": allows(membership, MANAGE),
        "identifiers": _identifier_rows(device),
        "monitoring": panel,
        "chart_ranges": monitoring.offered_ranges(),
        "metric_charts": {
            name: charts.line_chart(points, panel["range"], start=panel["start"])
            for name, points in panel["series"].items()
        },
        **recent_commands(device),
        "command_forms": [
            (decl, form_for(f"command:{decl['name']}", lambda decl=decl: _command_form(decl)))
            for decl in declarations.command_declarations
        ],
        "desired_version": version,
        "config_form": form_for(
            "config", lambda: DeclaredValuesForm(initial=desired, declarations=declarations.setting_declarations)
        ),
        "rename_form": form_for("rename", lambda: RenameDeviceForm(initial={"name": device.name})),
        "move_form": form_for("move", lambda: MoveDeviceForm(spaces=_other_spaces(device))),
        "events": device.events.select_related("actor")[:RECENT_EVENTS],
        # Owners and admins answer them; who asked is not the holder's to know, nor shown.
        "release_requests": (
            ReleaseRequest.objects.open().filter(device=device, holding_organization_id=device.organization_id)
            if allows(membership, MANAGE)
            else ()
        ),
    }
    return render(request, "devices/device_detail.html", context, status=status)


def _uuids(values):
    return [value for value in values if _is_uuid(value)]


def _is_uuid(value):
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def recent_commands(device):
    """The latest commands, and whether the page should keep polling for their state."""
    latest = list(device.commands.select_related("created_by")[:RECENT_COMMANDS])
    return {"commands": latest, "polling": any(command.is_pending for command in latest)}


def _identifier_rows(device):
    fields = device.device_model.claiming_method.ordered_fields()
    return [(field.label, getattr(device.identity, field.column)) for field in fields]


def _command_form(decl, data=None):
    return DeclaredValuesForm(data, declarations=decl.get("arguments", []), prefix=decl["name"])


class DeviceDetailView(DeviceMixin, View):
    """The device page: identity, monitoring, commands, configuration, history and actions."""

    def get(self, request, code):
        device, membership = self.get_device()
        return render_device_page(request, device, membership)


class DeviceCommandsView(DeviceMixin, TemplateView):
    """The commands table alone, polled by htmx while a command is pending."""

    template_name = "devices/_commands.html"

    def get_context_data(self, **kwargs):
        device, _ = self.get_device()
        return {"device": device, **recent_commands(device)}


class DeviceActionView(DeviceMixin, View):
    """POST-only action on one device: validate the form, call the domain function, redirect.

    Subclasses set `ability` and implement `build_form` (returning the form key and the bound
    form) and `perform` (returning the success message). A refusal re-renders the device page
    with the form, its errors and everything typed.
    """

    anchor = ""

    def build_form(self, device, data):
        raise NotImplementedError

    def perform(self, device, form):
        raise NotImplementedError

    def refusal_without_form(self, device, data):
        """A refusal to show above the page when the request fits no form on it, or None."""
        return

    def post(self, request, code):
        device, membership = self.get_device()
        refusal = self.refusal_without_form(device, request.POST)
        if refusal:
            messages.error(request, refusal)
            return render_device_page(request, device, membership, status=400)
        key, form = self.build_form(device, request.POST)
        if form.is_valid():
            try:
                message = self.perform(device, form)
            except (actions.DeviceActionError, commands.CommandError) as refusal:
                form.add_error(None, str(refusal))
            except configuration.ConfigurationError as refusal:
                for field, errors in refusal.errors.items():
                    form.add_error(field if field in form.fields else None, errors)
            else:
                messages.success(request, message)
                return redirect(reverse("device-detail", kwargs={"code": device.code}) + self.anchor)
        return render_device_page(request, device, membership, bound=(key, form), status=400)


class RenameDeviceView(DeviceActionView):
    ability = MANAGE

    def build_form(self, device, data):
        return "rename", RenameDeviceForm(data)

    def perform(self, device, form):
        actions.rename_device(device, name=form.cleaned_data["name"], actor=self.request.user)
        return f"Renamed to “{device.name}”."


class MoveDeviceView(DeviceActionView):
    ability = MANAGE

    def build_form(self, device, data):
        # A space of another organization is "not found", as everywhere in the portal.
        requested = data.get("space", "")
        if _is_uuid(requested):
            get_object_or_404(Space.objects.filter(organization_id=device.organization_id), code=requested)
        return "move", MoveDeviceForm(data, spaces=_other_spaces(device))

    def perform(self, device, form):
        actions.move_device(device, space=form.cleaned_data["space"], actor=self.request.user)
        return f"Moved to {device.space.name}."


class SendCommandView(DeviceActionView):
    ability = OPERATE
    anchor = "#commands"

    def build_form(self, device, data):
        name = data.get("command", "")
        declaration = device.device_model.command_declaration(name) or {"name": name, "arguments": []}
        return f"command:{name}", _command_form(declaration, data)

    def refusal_without_form(self, device, data):
        # No form on the page belongs to an unknown command: say it above the page instead.
        if device.device_model.command_declaration(data.get("command", "")) is None:
            return f"{device.device_model.name} has no such command; choose one of its commands."
        return None

    def perform(self, device, form):
        name = self.request.POST.get("command", "")
        command = commands.send_command(device, name=name, arguments=form.cleaned_data, actor=self.request.user)
        return f"Command “{command.name}” queued; the device picks it up at its next heartbeat."


class SaveConfigurationView(DeviceActionView):
    ability = OPERATE
    anchor = "#configuration"

    def build_form(self, device, data):
        return "config", DeclaredValuesForm(data, declarations=device.device_model.setting_declarations)

    def perform(self, device, form):
        saved = configuration.save_configuration(device, values=form.cleaned_data, actor=self.request.user)
        return f"Configuration version {saved.version} saved; the device picks it up at its next heartbeat."


class AllowReactivationView(DeviceActionView):
    ability = MANAGE

    def build_form(self, device, data):
        return "reactivation", ConfirmForm(data)

    def perform(self, device, form):
        actions.allow_reactivation(device, actor=self.request.user)
        return "Re-activation allowed for 24 hours: factory-reset the device and let it activate again."


class ConfirmedDeviceActionView(DeviceMixin, View):
    """A destructive action on one device: GET shows its confirmation page, POST calls the domain
    function. Subclasses set `template_name` and implement `build_form` and `perform` (returning
    the response after success); a refusal shows the confirmation page again with the reason."""

    ability = MANAGE
    template_name = ""

    def build_form(self, device, data=None):
        raise NotImplementedError

    def perform(self, device, form):
        raise NotImplementedError

    def get(self, request, code):
        device, membership = self.get_device()
        return self.render(device, self.build_form(device))

    def post(self, request, code):
        device, membership = self.get_device()
        form = self.build_form(device, request.POST)
        if form.is_valid():
            try:
                return self.perform(device, form)
            except actions.DeviceActionError as refusal:
                form.add_error(None, refusal.message)
        return self.render(device, form, status=400)

    def render(self, device, form, status=200):
        context = {"device": device, "organization": device.organization, "form": form}
        return render(self.request, self.template_name, context, status=status)


class ReleaseDeviceView(ConfirmedDeviceActionView):
    """The release: the device's whole history is deleted and its key revoked."""

    template_name = "devices/device_release.html"

    def build_form(self, device, data=None):
        return ReleaseDeviceForm(data, device=device)

    def perform(self, device, form):
        space, name = device.space, device.name
        actions.release_device(device, actor=self.request.user)
        messages.success(self.request, f"“{name}” was released, its history deleted and its key revoked.")
        return redirect("space-dashboard", code=space.code)


class ResetDeviceKeyView(ConfirmedDeviceActionView):
    """Reset the device key: the old key stops working and the unit must activate again."""

    template_name = "devices/device_reset_key.html"

    def build_form(self, device, data=None):
        return ConfirmForm(data)

    def perform(self, device, form):
        actions.reset_device_key(device, actor=self.request.user)
        messages.success(
            self.request,
            f"The key of “{device.name}” is revoked. Re-activation is allowed for 24 hours: restart the "
            "device, and once it has activated, check here that its new key was issued from your network.",
        )
        return redirect("device-detail", code=device.code)


class SpaceBulkActionView(LoginRequiredMixin, View):
    """The dashboard's bulk bar: move the selected devices (owner, admin) or send them one command
    (operator and above)."""

    def post(self, request, code):
        space, membership = get_for_user(Space.objects.select_related("organization"), request.user, OPERATE, code=code)
        form = bulk_action_form(space, request.POST)
        # Back to the filtered view the selection was made in (the dashboard's own query string).
        query = request.GET.urlencode()
        dashboard = redirect(reverse("space-dashboard", args=[space.code]) + (f"?{query}" if query else ""))
        if not form.is_valid():
            for errors in form.errors.values():
                messages.error(request, " ".join(errors))
            return dashboard
        selected = list(form.cleaned_data["devices"].select_related("device_model", "space"))
        if form.cleaned_data["action"] == BulkActionForm.MOVE:
            if not allows(membership, MANAGE):
                raise PermissionDenied("Only owners and admins move devices.")
            target = form.cleaned_data["space"]
            try:
                actions.move_devices(selected, space=target, actor=request.user)
            except actions.DeviceActionError as refusal:
                messages.error(request, refusal.message)
                return dashboard
            messages.success(request, f"Moved {len(selected)} device(s) to {target.name}.")
        else:
            try:
                sent = commands.send_command_to_devices(selected, name=form.cleaned_data["command"], actor=request.user)
            except commands.CommandError as refusal:
                messages.error(request, str(refusal))
                return dashboard
            messages.success(request, f"Command “{form.cleaned_data['command']}” queued for {len(sent)} device(s).")
        return dashboard


def bulk_action_form(space, data=None, *, shown_devices=()):
    """The bulk bar of `space`'s dashboard: its devices, the organization's other spaces, and the
    commands that every model among the devices accepts without arguments: the devices shown on
    the page (already loaded with their models), or on a POST the selected ones."""
    if data is None:
        models = {device.device_model for device in shown_devices}
    else:
        models = DeviceModel.objects.filter(devices__space=space, devices__code__in=_uuids(data.getlist("devices")))
    return BulkActionForm(
        data,
        devices=space.devices.all(),
        spaces=Space.objects.filter(organization_id=space.organization_id).exclude(pk=space.pk).order_by("name"),
        commands=commands.bulk_command_choices(models),
    )
