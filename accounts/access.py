"""Tenant checks, in one place (healthchecks' `_get_check_for_user` pattern).

Every portal view fetches an organization's object through these helpers: an object of an
organization the user does not belong to is answered 404, the same as a missing one; a
member whose role does not allow the action gets 403. A person reaches an organization that
requires two-factor authentication only in a session verified with a second factor
(accounts/two_factor.py: the helpers taking a user check it; API tokens are not people).
"""

from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404

from .models import Membership
from .two_factor import check_organization_requirement, session_is_verified

READ = "read"
OPERATE = "operate"  # send commands, change configuration
MANAGE = "manage"  # claim, rename, move, release; manage spaces


def allows(membership, ability):
    """Whether `membership`'s role permits `ability` (READ, OPERATE or MANAGE)."""
    if ability == READ:
        return True
    if ability == OPERATE:
        return membership.can_operate
    if ability == MANAGE:
        return membership.can_manage
    raise ValueError(f"unknown ability {ability!r}")


def organizations_allowing(user, ability):
    """The ids of the organizations where `user` is a member whose role permits `ability`, leaving
    out those requiring two-factor authentication that `user`'s session has not met."""
    verified = session_is_verified(user)
    return [
        membership.organization_id
        for membership in Membership.objects.filter(user=user).select_related("organization")
        if allows(membership, ability) and (verified or not membership.organization.two_factor_required)
    ]


def require(membership, ability):
    """403 unless `membership`'s role permits `ability`."""
    if not allows(membership, ability):
        raise PermissionDenied("Your role in this organization does not allow this.")
    return membership


def membership_for(user, organization_id, ability=READ):
    """The user's membership in the organization: 404 if none, 403 if the role does not allow `ability`."""
    membership = get_object_or_404(
        Membership.objects.select_related("organization"), user=user, organization_id=organization_id
    )
    check_organization_requirement(membership.organization, user)
    return require(membership, ability)


def get_in_organization(queryset, membership, ability=READ, **lookup):
    """Fetch one object with `lookup` among `membership`'s organization's, and check the role: what
    callers that act as a membership without a session (API tokens) look objects up with.
    Another organization's object is 404, the same as a missing one."""
    obj = get_object_or_404(queryset.filter(organization_id=membership.organization_id), **lookup)
    require(membership, ability)
    return obj


def get_for_user(queryset, user, ability=READ, **lookup):
    """Fetch one organization-owned object with `lookup` among those `user` may see, and check the role.

    `queryset` is a model's queryset with a `for_user(user)` method (spaces, devices, ...).
    Returns (object, membership).
    """
    obj = get_object_or_404(queryset.for_user(user), **lookup)
    return obj, membership_for(user, obj.organization_id, ability)


def organization_membership(user, ability=READ, **lookup):
    """The user's membership in the organization matching `lookup` (e.g. code=...), with the organization.

    404 for an organization the user is not a member of (the same as a missing one), 403 if the
    role does not allow `ability`.
    """
    organization_lookup = {f"organization__{field}": value for field, value in lookup.items()}
    membership = get_object_or_404(Membership.objects.select_related("organization"), user=user, **organization_lookup)
    check_organization_requirement(membership.organization, user)
    return require(membership, ability)


# Vendor staff in the admin: a staff user linked to a vendor sees only that vendor's data.
ALL_VENDORS = object()


def admin_vendor_scope(user):
    """Which vendor's data `user` may see in the admin: ALL_VENDORS for a superuser, the id of
    the vendor a staff user works for, or None (nothing) for anyone else."""
    if user.is_active and user.is_superuser:
        return ALL_VENDORS
    if not (user.is_active and user.is_staff):
        return None
    staff = getattr(user, "vendor_staff", None)
    return staff.vendor_id if staff else None
