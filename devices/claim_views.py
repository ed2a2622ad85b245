"""The + Claim Device wizard, and the QR label link that opens it with the unit's values filled in."""

from django.contrib import messages
from django.contrib.auth.mixins import LoginRequiredMixin
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.datastructures import MultiValueDict
from django.utils.decorators import method_decorator
from django.utils.functional import cached_property
from django.utils.html import format_html
from django.views import View
from django.views.decorators.debug import sensitive_post_parameters
from formtools.wizard.storage.session import SessionStorage
from formtools.wizard.views import SessionWizardView

from accounts.access import MANAGE, get_for_user
from releaserequests import proofs
from spaces.models import Space
from vendors.claim_codes import ClaimCodeError, HashedClaimCode, normalize_claim_code

from . import claim_labels
from .claims import (
    CLAIM_CODE_FIELD,
    AlreadyClaimedByYou,
    ClaimedByAnotherOrganization,
    ClaimError,
    TooManyFailures,
    WrongModel,
    claim_device,
    vendor_support_phrase,
)
from .forms import DeviceModelChoiceForm, DeviceNameForm, IdentifiersForm, VendorChoiceForm

VENDOR, MODEL, IDENTIFIERS, NAME = "vendor", "model", "identifiers", "name"
STEP_TITLES = {VENDOR: "Vendor", MODEL: "Model", IDENTIFIERS: "Identifiers", NAME: "Name"}

# The step whose form shows a refused claim's message: where the customer can put it right.
ERROR_STEPS = {WrongModel: MODEL, TooManyFailures: NAME}


# Where the wizard's storage keeps the claim code's hash, in place of the code typed.
_TYPED_CODE = f"{IDENTIFIERS}-{CLAIM_CODE_FIELD}"
_KEPT_CODE_HASH = f"{IDENTIFIERS}-{CLAIM_CODE_FIELD}-hmac"


class ClaimWizardStorage(SessionStorage):
    """formtools' session storage, keeping the claim code's keyed hash in place of the code.

    The session is written to PostgreSQL and Redis, so a code typed on the identifier step and
    kept there until the name step (or an abandoned claim's session expires) would be stored in
    plain text, which the portal never does. The hash is handed back to the identifier form as a
    HashedClaimCode, which only this storage makes: a client cannot post one.
    """

    def set_step_data(self, step, cleaned_data):
        if step != IDENTIFIERS or cleaned_data is None:
            return super().set_step_data(step, cleaned_data)
        data = dict(cleaned_data.lists()) if isinstance(cleaned_data, MultiValueDict) else dict(cleaned_data)
        data.pop(_KEPT_CODE_HASH, None)
        typed = (data.pop(_TYPED_CODE, None) or [None])[-1]
        hashed = typed if isinstance(typed, HashedClaimCode) else _hashed_if_well_formed(typed)
        if hashed is not None:
            data[_KEPT_CODE_HASH] = [hashed.digest]
        return super().set_step_data(step, data)

    def get_step_data(self, step):
        data = super().get_step_data(step)
        if step == IDENTIFIERS and data is not None and _KEPT_CODE_HASH in data:
            data[_TYPED_CODE] = HashedClaimCode(data.pop(_KEPT_CODE_HASH)[-1])
        return data


def _hashed_if_well_formed(typed):
    # Back stores what was typed on a step that may not validate: a malformed code is not kept at all.
    try:
        return HashedClaimCode.of(normalize_claim_code(typed))
    except ClaimCodeError:
        return None


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


@method_decorator(sensitive_post_parameters(_TYPED_CODE), name="dispatch")
class ClaimDeviceWizardView(LoginRequiredMixin, ManagedSpaceMixin, SessionWizardView):
    """The + Claim Device wizard: vendor (if several), model, identifiers, name, then claim_device()."""

    template_name = "devices/claim_wizard.html"
    storage_name = "devices.claim_views.ClaimWizardStorage"
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

    def get(self, request, *args, **kwargs):
        # A label link checked for this space (claim_labels) opens the wizard at its name step.
        label = claim_labels.take_checked_label(request, self.space)
        if label is None:
            return super().get(request, *args, **kwargs)
        self.storage.reset()
        answers = {
            VENDOR: {f"{VENDOR}-vendor": [label.device_model.vendor_id]},
            MODEL: {f"{MODEL}-device_model": [label.device_model.pk]},
            IDENTIFIERS: {f"{IDENTIFIERS}-{key}": [value] for key, value in label.typed_values().items()},
        }
        for step, data in answers.items():
            self.storage.set_step_data(step, data)
        self.storage.current_step = NAME
        return self.render(self.get_form(NAME))

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
            # The identifiers only: the claim code is never written into a page.
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
        typed = form_dict[IDENTIFIERS].cleaned_data
        device = claim_device(
            space=self.space,
            device_model=form_dict[MODEL].cleaned_data["device_model"],
            identifiers=typed,
            claim_code=typed.get(CLAIM_CODE_FIELD),
            name=form_dict[NAME].cleaned_data["name"],
            actor=self.request.user,
        )
        messages.success(self.request, f"“{device.name}” is claimed and now in {self.space.name}.")
        return redirect("space-dashboard", code=self.space.code)

    def render_claim_error(self, error):
        """Show a ClaimError as an error of the step where it can be put right, with everything typed
        kept but the claim code, which a refused claim forgets (it is not kept in the session)."""
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
        if isinstance(error, ClaimedByAnotherOrganization):
            organization = self.space.organization
            kept_code = (self.storage.get_step_data(IDENTIFIERS) or {}).get(_TYPED_CODE)
            proofs.keep(self.request, device=error.device, organization=organization, claim_code=kept_code)
            message = format_html(
                '{} <a href="{}">Ask the owner to release it</a>',
                message,
                reverse("release-request-ask", args=[organization.code]),
            )
        form.add_error(field if field in form.fields else None, message)
        self._forget_claim_code()
        return self.render(form)

    def _forget_claim_code(self):
        answers = self.storage.get_step_data(IDENTIFIERS)
        if answers is not None and _TYPED_CODE in answers:
            del answers[_TYPED_CODE]
            self.storage.set_step_data(IDENTIFIERS, answers)


class ClaimLabelView(View):
    """The link of a unit's QR label: keep what it says in the session and redirect at once to
    ClaimLabelSpaceView (signing in first if needed). No unit is looked up here, so every payload
    gets the same redirect; and no answer but this redirect carries the payload's path into the logs."""

    def get(self, request, payload):
        claim_labels.keep_label(request, payload)
        if not request.user.is_authenticated:
            # The label waits in the session, not in the sign-in page's ?next= (a claim code in a URL
            # ends up in logs and in the browser's history).
            messages.info(request, claim_labels.sign_in_message(request))
        return redirect("claim-label-space")


class ClaimLabelSpaceView(LoginRequiredMixin, View):
    """Where a label link goes on once signed in: the unit it names and the space to claim into (a
    choice if the user manages several), confirmed by a POST, which checks the label as a claim
    attempt and opens the wizard at its name step. Showing the page spends no attempt: only the
    CSRF-protected POST does, so another site cannot spend them by sending the person here.
    A malformed label, a wrong code or a unit already claimed gets a page saying so."""

    def get(self, request):
        found = self.kept(request)
        if not isinstance(found, claim_labels.Label):
            return found
        return self.render_choice(found)

    def post(self, request):
        found = self.kept(request)
        if not isinstance(found, claim_labels.Label):
            return found
        space = {str(space.code): space for space in self.spaces}.get(request.POST.get("space", ""))
        if space is None:
            return self.render_choice(found, error="Choose the space to claim into.")
        try:
            claim_labels.check_label(request, found, space)
        except ClaimedByAnotherOrganization as error:
            proofs.keep(request, device=error.device, organization=space.organization, claim_code=found.claim_code)
            ask = reverse("release-request-ask", args=[space.organization.code])
            return claim_labels.render_claim_refused(request, error, found, ask_release_url=ask)
        except ClaimError as error:
            return claim_labels.render_claim_refused(request, error, found)
        return redirect("claim-device", code=space.code)

    def kept(self, request):
        """The kept Label (and self.spaces), or the response when there is none to continue with."""
        try:
            label = claim_labels.kept_label(request)
        except claim_labels.LabelRefused as refused:
            return claim_labels.render_refused(request, refused, status=400)
        if label is None:
            messages.info(request, claim_labels.no_label().message)
            return redirect("home")
        self.spaces = label.spaces_for(request.user)
        if not self.spaces:
            return claim_labels.render_refused(request, label.no_space_refusal(), label=label, status=403)
        return label

    def render_choice(self, label, error=None):
        context = {"label": label, "spaces": self.spaces, "error": error}
        return render(self.request, "devices/claim_label_space.html", context, status=400 if error else 200)
