"""Creating, renaming and deleting spaces (owners and admins). Thin views over spaces/actions.py;
lookups through accounts/access.py."""

from django.contrib import messages
from django.contrib.auth.mixins import LoginRequiredMixin
from django.shortcuts import redirect
from django.views.generic import FormView

from accounts.access import MANAGE, get_for_user, organization_membership

from .actions import SpaceActionError, create_space, delete_space, rename_space
from .forms import DeleteSpaceForm, SpaceNameForm
from .models import Space


class SpaceCreateView(LoginRequiredMixin, FormView):
    template_name = "spaces/space_create.html"
    form_class = SpaceNameForm

    def dispatch(self, request, *args, **kwargs):
        if request.user.is_authenticated:
            self.membership = organization_membership(request.user, MANAGE, code=kwargs["code"])
        return super().dispatch(request, *args, **kwargs)

    def get_context_data(self, **kwargs):
        return super().get_context_data(organization=self.membership.organization, **kwargs)

    def form_valid(self, form):
        try:
            space = create_space(self.membership.organization, name=form.cleaned_data["name"], actor=self.request.user)
        except SpaceActionError as error:
            form.add_error("name", error.message)
            return self.form_invalid(form)
        messages.success(self.request, f"Space “{space.name}” created.")
        return redirect("space-dashboard", code=space.code)


class SpaceManageMixin(LoginRequiredMixin):
    """The URL's space, for a member who may manage it (owner or admin)."""

    def dispatch(self, request, *args, **kwargs):
        if request.user.is_authenticated:
            self.space, self.membership = get_for_user(
                Space.objects.select_related("organization"), request.user, MANAGE, code=kwargs["code"]
            )
        return super().dispatch(request, *args, **kwargs)

    def get_context_data(self, **kwargs):
        return super().get_context_data(space=self.space, organization=self.space.organization, **kwargs)


class SpaceSettingsView(SpaceManageMixin, FormView):
    """Rename a space; links to deleting it."""

    template_name = "spaces/space_settings.html"
    form_class = SpaceNameForm

    def get_initial(self):
        return {"name": self.space.name}

    def form_valid(self, form):
        try:
            rename_space(self.space, name=form.cleaned_data["name"], actor=self.request.user)
        except SpaceActionError as error:
            form.add_error("name", error.message)
            return self.form_invalid(form)
        messages.success(self.request, f"Space renamed to “{self.space.name}”.")
        return redirect("space-dashboard", code=self.space.code)


class SpaceDeleteView(SpaceManageMixin, FormView):
    """Delete a space; one with devices asks which space to move them to first."""

    template_name = "spaces/space_delete.html"
    form_class = DeleteSpaceForm

    def get_form_kwargs(self):
        return super().get_form_kwargs() | {"space": self.space, "device_count": self.space.devices.count()}

    def form_valid(self, form):
        target = form.cleaned_data.get("move_devices_to")
        try:
            delete_space(self.space, actor=self.request.user, move_devices_to=target)
        except SpaceActionError as error:
            form.add_error(None, error.message)
            return self.form_invalid(form)
        moved = f" Its devices are now in “{target.name}”." if target else ""
        messages.success(self.request, f"Space “{self.space.name}” deleted.{moved}")
        return redirect("organization-overview", code=self.space.organization.code)
