"""Membership rules check their guards on the rows they lock, not on the caller's copy."""

import pytest

from accounts.members import (
    InvalidInvitation,
    MembershipError,
    accept_invitation,
    change_role,
    remove_member,
    withdraw_invitation,
)
from accounts.models import Invitation, Membership, Role

from .factories import MembershipFactory, UserFactory
from .racing import race


def _copy(membership):
    return Membership.objects.select_related("organization", "user").get(pk=membership.pk)


@pytest.mark.django_db
def test_an_admin_cannot_demote_a_member_made_owner_since_the_page_was_loaded(organization, owner, admin_member):
    member = MembershipFactory(organization=organization, role=Role.VIEWER)
    stale = _copy(member)
    change_role(_copy(member), role=Role.OWNER, actor=owner)
    with pytest.raises(MembershipError, match="Only an owner"):
        change_role(stale, role=Role.OPERATOR, actor=admin_member)
    assert Membership.objects.get(pk=member.pk).role == Role.OWNER


@pytest.mark.django_db
def test_an_admin_cannot_remove_a_member_made_owner_since_the_page_was_loaded(organization, owner, admin_member):
    member = MembershipFactory(organization=organization, role=Role.VIEWER)
    stale = _copy(member)
    change_role(_copy(member), role=Role.OWNER, actor=owner)
    with pytest.raises(MembershipError, match="Only an owner"):
        remove_member(stale, actor=admin_member)
    assert Membership.objects.filter(pk=member.pk).exists()


@pytest.mark.django_db
def test_changing_the_role_of_a_member_removed_meanwhile_is_refused(organization, owner):
    member = MembershipFactory(organization=organization, role=Role.VIEWER)
    stale = _copy(member)
    remove_member(_copy(member), actor=owner)
    with pytest.raises(MembershipError, match="no longer a member"):
        change_role(stale, role=Role.OPERATOR, actor=owner)
    assert not Membership.objects.filter(pk=member.pk).exists()


@pytest.mark.django_db
def test_accepting_an_invitation_withdrawn_meanwhile_is_refused(organization, owner):
    invitation = Invitation.objects.create(
        organization=organization, email="new.person@example.test", role=Role.VIEWER, invited_by=owner
    )
    withdraw_invitation(invitation, actor=owner)
    with pytest.raises(InvalidInvitation, match="withdrawn"):
        accept_invitation(invitation, user=UserFactory(email="new.person@example.test"))
    assert not Membership.objects.filter(user__email="new.person@example.test").exists()


@pytest.mark.django_db(transaction=True)
def test_an_owner_demoted_meanwhile_can_no_longer_make_owners(organization, owner):
    other_owner = MembershipFactory(organization=organization, role=Role.OWNER)
    viewer = MembershipFactory(organization=organization, role=Role.VIEWER)
    demoted = owner.memberships.get()

    first, second, overlapped = race(
        lambda: change_role(_copy(demoted), role=Role.ADMIN, actor=other_owner.user),
        lambda: change_role(_copy(viewer), role=Role.OWNER, actor=owner),
    )

    assert overlapped
    assert not isinstance(first, Exception), first
    assert isinstance(second, MembershipError), second
    assert Membership.objects.get(pk=viewer.pk).role == Role.VIEWER
