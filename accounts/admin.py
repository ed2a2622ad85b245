from django.conf import settings
from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.core.exceptions import ValidationError
from django.forms.models import BaseInlineFormSet
from django.urls import reverse
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice

from .admin_mixins import ReadOnlyAdminMixin
from .forms import ThrottledAdminAuthenticationForm
from .members import add_member, change_role, remove_member
from .models import AuditEntry, Invitation, Membership, Organization, Role, User
from .two_factor import TwoFactorRequired, reset_two_factor, session_is_verified


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    ordering = ["email"]
    list_display = ["email", "full_name", "is_staff", "is_active", "date_joined"]
    search_fields = ["email", "full_name"]
    fieldsets = [
        (None, {"fields": ["email", "password", "full_name"]}),
        ("Permissions", {"fields": ["is_active", "is_staff", "is_superuser", "groups", "user_permissions"]}),
        ("Dates", {"fields": ["last_login", "date_joined"]}),
    ]
    add_fieldsets = [(None, {"classes": ["wide"], "fields": ["email", "password1", "password2"]})]
    actions = ["reset_two_factor"]

    @admin.action(description="Remove all second factors (lost phone and recovery codes)", permissions=["change"])
    def reset_two_factor(self, request, queryset):
        for user in queryset:
            reset_two_factor(user)
        self.message_user(request, f"Second factors removed and sessions ended for {len(queryset)} account(s).")


class MembershipFormSet(BaseInlineFormSet):
    """Checks the membership rules on the whole edit before anything is saved: the organization
    keeps an owner, and a row keeps its person (remove it and add another instead)."""

    def clean(self):
        super().clean()
        if any(self.errors):
            return
        remaining_roles = []
        for form in self.forms:
            if not form.cleaned_data or form.cleaned_data.get("DELETE"):
                continue
            if form.instance.pk and "user" in form.changed_data:
                form.add_error("user", "Remove this member and add the other person instead.")
            if form.cleaned_data["user"].is_api_token:
                form.add_error("user", "An API token's account cannot be a member: its token carries its role.")
            remaining_roles.append(form.cleaned_data["role"])
        had_owner = self.instance.pk and self.instance.memberships.filter(role=Role.OWNER).exists()
        if had_owner and Role.OWNER not in remaining_roles:
            raise ValidationError("The organization must keep at least one owner.")


class MembershipInline(admin.TabularInline):
    model = Membership
    formset = MembershipFormSet
    fields = ["user", "role"]
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Organization)
class OrganizationAdmin(admin.ModelAdmin):
    list_display = ["name", "created_at"]
    search_fields = ["name"]
    filter_horizontal = ["connected_vendors"]
    inlines = [MembershipInline]

    def save_formset(self, request, form, formset, change):
        """Members change through the membership rules (accounts/members.py), so admin edits are in
        the audit log too. Additions and promotions go first, so an owner hand-over never passes
        through an organization without owner."""
        if formset.model is not Membership:
            return super().save_formset(request, form, formset, change)
        formset.save(commit=False)
        for membership in formset.new_objects:
            add_member(form.instance, user=membership.user, role=membership.role, actor=request.user)
        changed = sorted(
            (membership for membership, fields in formset.changed_objects if "role" in fields),
            key=lambda membership: membership.role != Role.OWNER,
        )
        for membership in changed:
            change_role(Membership.objects.get(pk=membership.pk), role=membership.role, actor=request.user)
        for membership in formset.deleted_objects:
            remove_member(membership, actor=request.user)
        return None


@admin.register(Invitation)
class InvitationAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["email", "organization", "role", "created_at", "accepted_at"]
    list_filter = ["role"]
    list_select_related = ["organization"]
    search_fields = ["email", "organization__name"]

    # Invitations are made in the portal (accounts.members.invite_member), which mails the link and logs it.


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Read-only: the log is written only by record_audit."""

    deletable = False
    list_display = ["created_at", "organization", "actor_email", "action", "target"]
    list_filter = ["action"]
    list_select_related = ["organization"]
    search_fields = ["target", "actor_email", "organization__name"]


# People manage their own second factors on their account page: the admin shows none of their secrets.
admin.site.unregister(TOTPDevice)
admin.site.unregister(StaticDevice)


def _has_permission(request, _staff_may_enter=admin.site.has_permission):
    """The admin's own check, and with ADMIN_TWO_FACTOR_REQUIRED a session verified with a second
    factor: staff without one are sent to set one up (accounts/security_middleware.py)."""
    allowed = _staff_may_enter(request)
    signing_out = request.path == reverse("admin:logout")
    if allowed and settings.ADMIN_TWO_FACTOR_REQUIRED and not signing_out and not session_is_verified(request.user):
        raise TwoFactorRequired("The admin requires two-factor authentication.")
    return allowed


admin.site.has_permission = _has_permission
# The admin's sign-in is limited like the portal's.
admin.site.login_form = ThrottledAdminAuthenticationForm
