from django.contrib import messages
from django.contrib.auth.mixins import LoginRequiredMixin
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.functional import cached_property
from django.utils.html import format_html
from formtools.wizard.views import SessionWizardView

from accounts.access import MANAGE, get_for_user
from spaces.models import Space

from .claims import AlreadyClaimedByYou, ClaimError, TooManyFailures, WrongModel, claim_device, vendor_support_phrase
from .forms import DeviceModelChoiceForm, DeviceNameForm, IdentifiersForm, VendorChoiceForm

VENDOR, MODEL, IDENTIFIERS, NAME = "vendor", "model", "identifiers", "name"
STEP_TITLES = {VENDOR: "Vendor", MODEL: "Model", IDENTIFIERS: "Identifiers", NAME: "Name"}

# The step whose form shows a refused claim's message: where the customer can put it right.
ERROR_STEPS = {WrongModel: MODEL, TooManyFailures: NAME}


def several_vendors_connected(wizard):
    """The vendor step is shown only to organizations connected to more than one vendor."""
    return len(wizard.connected_vendors) > 1


class ManagedSpaceMixin:
    """Loads the space of the URL for a user whose role may claim into it (outsider 404, other roles 403)."""

    def dispatch(self, request, *args, **kwargs):
        self.space, self.membership = get_for_user(
            Space.objects.select_related("organization"), request.user, MANAGE, code=kwargs["code"]
        )
        return super().dispatch(request, *args, **kwargs)


class ClaimDeviceWizardView(LoginRequiredMixin, ManagedSpaceMixin, SessionWizardView):
    """The + Claim Device wizard: vendor (if several), model, identifiers, name, then claim_device()."""

    template_name = "devices/claim_wizard.html"
    form_list = [
        (VENDOR, VendorChoiceForm),
        (MODEL, DeviceModelChoiceForm),
        (IDENTIFIERS, IdentifiersForm),
        (NAME, DeviceNameForm),
    ]
    condition_dict = {VENDOR: several_vendors_connected}

    def get_prefix(self, request, *args, **kwargs):
        # One flow per space: claiming into two spaces in two tabs keeps two separate wizards.
        return f"claim_{kwargs['code'].hex}"

    @cached_property
    def connected_vendors(self):
        return list(self.space.organization.connected_vendors.order_by("name"))

    def chosen_vendor(self):
        if VENDOR not in self.get_form_list():
            return self.connected_vendors[0] if self.connected_vendors else None
        return (self.get_cleaned_data_for_step(VENDOR) or {}).get("vendor")

    def chosen_device_model(self):
        return (self.get_cleaned_data_for_step(MODEL) or {}).get("device_model")

    def get_form_kwargs(self, step=None):
        if step == VENDOR:
            return {"organization": self.space.organization}
        if step == MODEL:
            return {"vendor": self.chosen_vendor()}
        if step == IDENTIFIERS:
            return {"device_model": self.chosen_device_model()}
        return {}

    def get_context_data(self, form, **kwargs):
        context = super().get_context_data(form=form, **kwargs)
        steps = list(self.get_form_list())
        current = steps.index(self.steps.current)
        device_model = self.chosen_device_model() if self.steps.current in (IDENTIFIERS, NAME) else None
        context.update(
            space=self.space,
            organization=self.space.organization,
            step_title=STEP_TITLES[self.steps.current],
            progress=[
                {"step": step, "title": STEP_TITLES[step], "number": index + 1, "done": index < current}
                for index, step in enumerate(steps)
            ],
            no_vendor_connected=not self.connected_vendors,
            device_model=device_model,
            vendor_support=vendor_support_phrase(device_model.vendor) if device_model else "",
        )
        if self.steps.current == NAME and device_model:
            typed = self.get_cleaned_data_for_step(IDENTIFIERS) or {}
            context["typed_identifiers"] = [
                (field.label, typed.get(field.key, "")) for field in device_model.claiming_method.ordered_fields()
            ]
        return context

    def render_goto_step(self, goto_step, **kwargs):
        # Going back (or jumping to an earlier step) keeps what was typed on the current step.
        form = self.get_form(data=self.request.POST, files=self.request.FILES)
        self.storage.set_step_data(self.steps.current, self.process_step(form))
        return super().render_goto_step(goto_step, **kwargs)

    def render_done(self, form, **kwargs):
        # A refused claim leaves the wizard's stored answers in place (the base class only resets
        # them after done() returns), so the customer can correct one step and claim again.
        try:
            return super().render_done(form, **kwargs)
        except ClaimError as error:
            return self.render_claim_error(error)

    def done(self, form_list, form_dict, **kwargs):
        device = claim_device(
            space=self.space,
            device_model=form_dict[MODEL].cleaned_data["device_model"],
            identifiers=form_dict[IDENTIFIERS].cleaned_data,
            name=form_dict[NAME].cleaned_data["name"],
            actor=self.request.user,
        )
        messages.success(self.request, f"“{device.name}” is claimed and now in {self.space.name}.")
        return redirect("space-dashboard", code=self.space.code)

    def render_claim_error(self, error):
        """Show a ClaimError as an error of the step where it can be put right, with everything typed kept."""
        step = ERROR_STEPS.get(type(error), IDENTIFIERS)
        self.storage.current_step = step
        form = self.get_form(step, data=self.storage.get_step_data(step), files=self.storage.get_step_files(step))
        form.is_valid()
        field = error.field if step == IDENTIFIERS else ("device_model" if step == MODEL else None)
        message = error.message
        if isinstance(error, AlreadyClaimedByYou):
            space = error.device.space
            message = format_html(
                '{} <a href="{}">Open {}</a>', message, reverse("space-dashboard", args=[space.code]), space.name
            )
        form.add_error(field if field in form.fields else None, message)
        return self.render(form)
