"""Members, invitations and the audit log of an organization. Thin views: parse, call the rule
(accounts/members.py), render. Every organization lookup goes through accounts/access.py."""

import itertools
import json

from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.mixins import LoginRequiredMixin
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.views.generic import FormView, ListView, TemplateView, View

from portal.csv import csv_lines
from portal.keyset import rows_in_order
from portal.links import portal_origin

from .access import MANAGE, READ, allows, organization_membership
from .forms import AuditFilterForm, InvitationForm, RoleForm, SignUpForm, TwoFactorPolicyForm
from .members import (
    MembershipError,
    accept_invitation,
    change_role,
    invitation_from_token,
    invite_member,
    remove_member,
    withdraw_invitation,
)
from .models import AuditEntry, Membership, Role, User
from .pagination import UncountedPaginator
from .two_factor import TwoFactorError, second_factor_exists, session_is_verified, set_two_factor_requirement


class OrganizationMixin(LoginRequiredMixin):
    """Resolves the organization of the URL's `code` for the signed-in user, with `ability`."""

    ability = READ

    def dispatch(self, request, *args, **kwargs):
        if request.user.is_authenticated:
            self.membership = organization_membership(request.user, self.ability, code=kwargs["code"])
            self.organization = self.membership.organization
        return super().dispatch(request, *args, **kwargs)

    def get_context_data(self, **kwargs):
        return super().get_context_data(organization=self.organization, membership=self.membership, **kwargs)

    def members_url(self):
        return reverse("members", kwargs={"code": self.organization.code})


class MembersView(OrganizationMixin, FormView):
    """Who is in the organization, with which role, and who is invited; owners and admins invite
    (POST), change roles and remove members."""

    template_name = "accounts/members.html"
    form_class = InvitationForm

    def post(self, request, *args, **kwargs):
        if not allows(self.membership, MANAGE):
            raise PermissionDenied("Only owners and admins invite members.")
        return super().post(request, *args, **kwargs)

    def get_context_data(self, **kwargs):
        can_manage = allows(self.membership, MANAGE)
        return super().get_context_data(
            members=self.organization.memberships.select_related("user")
            .annotate(has_second_factor=second_factor_exists())
            .order_by("user__email"),
            invitations=self.organization.invitations.pending().select_related("invited_by") if can_manage else [],
            can_manage=can_manage,
            is_owner=self.membership.role == Role.OWNER,
            role_choices=Role.choices,
            **kwargs,
        )

    def form_valid(self, form):
        try:
            invitation = invite_member(
                self.organization,
                email=form.cleaned_data["email"],
                role=form.cleaned_data["role"],
                actor=self.request.user,
                link_origin=portal_origin(self.request) + "/",
            )
        except MembershipError as error:
            form.add_error("email", error.message)
            return self.form_invalid(form)
        messages.success(self.request, f"Invitation sent to {invitation.email}.")
        return redirect(self.members_url())


class MemberActionView(OrganizationMixin, View):
    """POST-only actions on one member of the organization."""

    http_method_names = ["post"]

    def get_member(self):
        return get_object_or_404(
            Membership.objects.select_related("user", "organization"),
            organization=self.organization,
            pk=self.kwargs["pk"],
        )


class ChangeRoleView(MemberActionView):
    ability = MANAGE

    def post(self, request, code, pk):
        member = self.get_member()
        form = RoleForm(request.POST)
        if not form.is_valid():
            messages.error(request, "Choose one of the roles.")
            return redirect(self.members_url())
        try:
            change_role(member, role=form.cleaned_data["role"], actor=request.user)
        except MembershipError as error:
            messages.error(request, error.message)
        else:
            messages.success(request, f"{member.user.email} is now {member.get_role_display().lower()}.")
        return redirect(self.members_url())


class RemoveMemberView(MemberActionView):
    ability = MANAGE

    def post(self, request, code, pk):
        member = self.get_member()
        try:
            remove_member(member, actor=request.user)
        except MembershipError as error:
            messages.error(request, error.message)
            return redirect(self.members_url())
        messages.success(request, f"{member.user.email} is no longer a member of {self.organization.name}.")
        return redirect(reverse("home") if member.user_id == request.user.pk else self.members_url())


class WithdrawInvitationView(MemberActionView):
    ability = MANAGE

    def post(self, request, code, pk):
        invitation = get_object_or_404(self.organization.invitations.pending(), pk=pk)
        if withdraw_invitation(invitation, actor=request.user):
            messages.success(request, f"The invitation to {invitation.email} is withdrawn; its link no longer works.")
        else:
            messages.info(request, f"The invitation to {invitation.email} was accepted or withdrawn meanwhile.")
        return redirect(self.members_url())


class TwoFactorPolicyView(MemberActionView):
    """POST, owners: require two-factor authentication of every member, or stop requiring it."""

    ability = MANAGE

    def post(self, request, code):
        form = TwoFactorPolicyForm(request.POST)
        form.is_valid()
        required = form.cleaned_data.get("required", False)
        try:
            changed = set_two_factor_requirement(self.organization, required=required, actor=request.user)
        except TwoFactorError as error:
            messages.error(request, error.message)
        else:
            if changed:
                messages.success(
                    request,
                    f"{self.organization.name} now requires two-factor authentication of every member."
                    if required
                    else f"{self.organization.name} no longer requires two-factor authentication.",
                )
        return redirect(self.members_url())


class LeaveOrganizationView(MemberActionView):
    def post(self, request, code):
        try:
            remove_member(self.membership, actor=request.user)
        except MembershipError as error:
            messages.error(request, error.message)
            return redirect(self.members_url())
        messages.success(request, f"You left {self.organization.name}.")
        return redirect("home")


class InvitationAcceptView(TemplateView):
    """The link in the invitation e-mail. Creates the account if the address has none; a person who
    has one signs in first; then one click joins the organization."""

    template_name = "accounts/invitation_accept.html"

    def dispatch(self, request, *args, **kwargs):
        try:
            self.invitation = invitation_from_token(kwargs["token"])
        except MembershipError as error:
            return self.render_to_response({"error": error.message}, status=400)
        self.has_account = User.objects.filter(email__iexact=self.invitation.email).exists()
        return super().dispatch(request, *args, **kwargs)

    def get_context_data(self, **kwargs):
        user = self.request.user
        if user.is_authenticated and user.email.lower() != self.invitation.email.lower():
            kwargs.setdefault(
                "error",
                f"This invitation was sent to {self.invitation.email}; you are signed in as {user.email}. "
                "Sign out and open the link again.",
            )
        context = super().get_context_data(invitation=self.invitation, has_account=self.has_account, **kwargs)
        if not self.has_account and not self.request.user.is_authenticated:
            context.setdefault("form", SignUpForm(email=self.invitation.email))
        return context

    def post(self, request, token):
        if not request.user.is_authenticated and self.has_account:
            return redirect(f"{reverse('login')}?next={request.path}")
        form = None if request.user.is_authenticated else SignUpForm(request.POST, email=self.invitation.email)
        if form is not None and not form.is_valid():
            return self.render_to_response(self.get_context_data(form=form))
        try:
            # A new account exists only if it joined: both or neither.
            with transaction.atomic():
                user = request.user if form is None else form.save()
                membership = accept_invitation(self.invitation, user=user)
        except MembershipError as error:
            return self.render_to_response(self.get_context_data(error=error.message), status=400)
        if form is not None:
            login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        organization = membership.organization
        messages.success(request, f"Welcome to {organization.name}: you are {membership.get_role_display().lower()}.")
        overview = reverse("organization-overview", kwargs={"code": organization.code})
        if organization.two_factor_required and not session_is_verified(request.user):
            # The organization's pages would send them there anyway; say why first.
            return redirect(f"{reverse('two-factor-setup')}?next={overview}")
        return redirect(overview)


class AuditLogMixin(OrganizationMixin):
    ability = MANAGE

    def filter_form(self):
        actors = AuditEntry.objects.actor_choices(self.organization.pk)
        return AuditFilterForm(self.request.GET or None, actors=actors)

    def filtered_entries(self, form):
        entries = AuditEntry.objects.filter(organization=self.organization).order_by("-created_at", "-id")
        return form.filter(entries) if form.is_valid() else entries


class AuditLogView(AuditLogMixin, ListView):
    """The organization's audit log, newest first, filterable by action, actor and dates."""

    template_name = "accounts/audit_log.html"
    context_object_name = "entries"
    paginate_by = 50
    paginator_class = UncountedPaginator

    def get_queryset(self):
        self.form = self.filter_form()
        return self.filtered_entries(self.form).select_related("actor")

    def get_context_data(self, **kwargs):
        query = self.request.GET.copy()
        query.pop("page", None)
        return super().get_context_data(form=self.form, query=query.urlencode(), **kwargs)


class AuditLogCsvView(AuditLogMixin, View):
    """The same filtered log as CSV, streamed: rows are read from the database a page at a time
    (portal/keyset.rows_in_order) and sent as they are written, so an export of millions of
    entries does not sit in memory."""

    def get(self, request, code):
        form = self.filter_form()
        entries = self.filtered_entries(form).select_related("actor")
        header = ["time", "actor", "action", "target", "details"]
        rows = (
            [
                entry.created_at.isoformat(),
                entry.actor_label,
                entry.action,
                entry.target,
                json.dumps(entry.details, ensure_ascii=False),
            ]
            for entry in rows_in_order(entries)
        )
        response = StreamingHttpResponse(
            csv_lines(itertools.chain([header], rows)), content_type="text/csv; charset=utf-8"
        )
        response["Content-Disposition"] = f'attachment; filename="audit-{self.organization.code}.csv"'
        return response
