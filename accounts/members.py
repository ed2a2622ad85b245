"""Membership rules: inviting by e-mail, accepting, changing roles, removing and leaving.

Each rule is one function, called alike by the portal views, the admin and the CLI. An
organization always keeps at least one owner; only an owner makes or unmakes owners.
"""

from datetime import timedelta

from django.conf import settings
from django.core import signing
from django.core.mail import send_mail
from django.db import transaction
from django.template.loader import render_to_string
from django.utils import timezone

from portal.errors import UserFacingError

from . import tasks
from .audit import record_audit
from .models import AuditEntry, Invitation, Membership, Role

INVITATION_MAX_AGE = timedelta(days=7)
_INVITATION_SALT = "accounts.invitation"


class MembershipError(UserFacingError):
    """A membership rule refused the action."""


class LastOwnerError(MembershipError):
    pass


class InvalidInvitation(MembershipError):
    pass


def invitation_token(invitation):
    """The signed, timestamped token of the invitation link."""
    return signing.TimestampSigner(salt=_INVITATION_SALT).sign(str(invitation.code))


def invitation_from_token(token):
    """The pending invitation a link's token stands for; InvalidInvitation if forged, expired or used."""
    signer = signing.TimestampSigner(salt=_INVITATION_SALT)
    try:
        code = signer.unsign(token, max_age=INVITATION_MAX_AGE)
    except signing.SignatureExpired as exc:
        raise InvalidInvitation(
            "This invitation has expired (links are valid for 7 days). Ask the person who invited you "
            "to send a new one."
        ) from exc
    except signing.BadSignature as exc:
        raise InvalidInvitation("This invitation link is not valid. Check that you copied all of it.") from exc
    invitation = Invitation.objects.select_related("organization", "invited_by").filter(code=code).first()
    if invitation is None or invitation.accepted_at is not None:
        raise InvalidInvitation("This invitation has already been used or was withdrawn.")
    return invitation


def invite_member(organization, *, email, role, actor, accept_url_for):
    """Invite `email` to `organization` with `role`; a task e-mails them a link valid for 7 days
    once the transaction commits.

    Inviting an address again replaces its pending invitation (new role, new link).
    `accept_url_for(token)` turns the token into the absolute link put in the e-mail.
    Only an owner may invite an owner.
    """
    email = email.strip().lower()
    if Membership.objects.filter(organization=organization, user__email__iexact=email).exists():
        raise MembershipError(f"{email} is already a member of {organization.name}.")
    with transaction.atomic():
        if role == Role.OWNER:
            _require_owner(_lock_owners(organization.pk), actor, "Only an owner can invite another owner.")
        Invitation.objects.pending().filter(organization=organization, email=email).delete()
        invitation = Invitation.objects.create(organization=organization, email=email, role=role, invited_by=actor)
        record_audit(
            organization_id=organization.pk,
            actor=actor,
            action=AuditEntry.Action.MEMBER_INVITED,
            target=email,
            details={"role": role},
        )
    accept_url = accept_url_for(invitation_token(invitation))
    transaction.on_commit(lambda: tasks.send_invitation_email.delay(invitation.pk, accept_url))
    return invitation


def withdraw_invitation(invitation, *, actor):
    """Withdraw a pending invitation: its link stops working at once (it names a row that is gone).

    Recorded in the organization's audit log. Returns False if it was accepted or withdrawn meanwhile.
    """
    with transaction.atomic():
        withdrawn, _ = Invitation.objects.pending().filter(pk=invitation.pk).delete()
        if withdrawn:
            record_audit(
                organization_id=invitation.organization_id,
                actor=actor,
                action=AuditEntry.Action.INVITATION_WITHDRAWN,
                target=invitation.email,
                details={"role": invitation.role},
            )
    return bool(withdrawn)


def deliver_invitation(invitation_id, accept_url):
    """E-mail a pending invitation's link, once (the task sending it may be delivered twice).

    Marks the invitation sent with a compare-and-set before sending; if sending fails the mark
    is taken back and the error raised, so that the task retries.
    """
    claimed = Invitation.objects.filter(pk=invitation_id, email_sent_at__isnull=True, accepted_at__isnull=True).update(
        email_sent_at=timezone.now()
    )
    if not claimed:
        return False
    invitation = Invitation.objects.select_related("organization", "invited_by").get(pk=invitation_id)
    context = {
        "invitation": invitation,
        "accept_url": accept_url,
        "valid_days": INVITATION_MAX_AGE.days,
        "site_name": settings.SITE_NAME,
    }
    try:
        send_mail(
            subject=f"You are invited to {invitation.organization.name} on {settings.SITE_NAME}",
            message=render_to_string("accounts/invitation_email.txt", context),
            from_email=None,
            recipient_list=[invitation.email],
        )
    except Exception:
        Invitation.objects.filter(pk=invitation_id).update(email_sent_at=None)
        raise
    return True


def accept_invitation(invitation, *, user):
    """Make `user` a member of the invitation's organization with the invited role.

    The user must hold the invited address. A user who is already a member keeps their role.
    The invitation can be used once.
    """
    if user.email.lower() != invitation.email.lower():
        raise InvalidInvitation(
            f"This invitation was sent to {invitation.email}; you are signed in as {user.email}. "
            "Sign out and open the link again."
        )
    with transaction.atomic():
        locked = Invitation.objects.select_for_update().filter(pk=invitation.pk).first()
        if locked is None or locked.accepted_at is not None:
            raise InvalidInvitation("This invitation has already been used or was withdrawn.")
        membership, created = Membership.objects.get_or_create(
            user=user, organization_id=locked.organization_id, defaults={"role": locked.role}
        )
        locked.accepted_at = timezone.now()
        locked.accepted_by = user
        locked.save(update_fields=["accepted_at", "accepted_by"])
        if created:
            record_audit(
                organization_id=locked.organization_id,
                actor=user,
                action=AuditEntry.Action.MEMBER_JOINED,
                target=user.email,
                details={"role": membership.role},
            )
    return membership


def add_member(organization, *, user, role, actor):
    """Make `user` a member of `organization` with `role` directly, without an invitation (portal
    operators in the admin, the CLI). Only an owner or a portal operator adds an owner."""
    with transaction.atomic():
        if role == Role.OWNER:
            _require_owner(_lock_owners(organization.pk), actor, "Only an owner can add an owner.")
        membership = Membership.objects.create(organization=organization, user=user, role=role)
        record_audit(
            organization_id=organization.pk,
            actor=actor,
            action=AuditEntry.Action.MEMBER_JOINED,
            target=user.email,
            details={"role": role, "added_by": actor.email},
        )
    return membership


def _lock_owners(organization_id):
    """Lock the organization's owner rows until the transaction ends, so that two concurrent
    demotions cannot leave it without owner and an owner demoted meanwhile no longer counts as one.
    Returns {membership id: user id} of its owners, in id order."""
    return dict(
        Membership.objects.select_for_update()
        .filter(organization_id=organization_id, role=Role.OWNER)
        .order_by("pk")
        .values_list("pk", "user_id")
    )


def _require_owner(owners, actor, message):
    """Owners manage owners; so do the portal's operators (superusers), who act for any organization.
    `owners` as _lock_owners returned them."""
    if actor.is_superuser:
        return
    if actor.pk not in owners.values():
        raise MembershipError(message)


def _lock_membership(membership):
    """`membership`'s row, locked; refused if the member was removed meanwhile. Lock the owners first."""
    locked = Membership.objects.select_for_update(of=("self",)).select_related("user").filter(pk=membership.pk).first()
    if locked is None:
        raise MembershipError(f"{membership.user.email} is no longer a member of this organization.")
    return locked


def change_role(membership, *, role, actor):
    """Give `membership` a new role. Only an owner makes or unmakes owners; the last owner stays owner.
    Both rules are checked on the locked rows: the role the member has now, the owners there are now."""
    with transaction.atomic():
        owners = _lock_owners(membership.organization_id)
        locked = _lock_membership(membership)
        if role == locked.role:
            membership.role = role
            return membership
        if Role.OWNER in (role, locked.role):
            _require_owner(owners, actor, "Only an owner can make or unmake owners.")
        if locked.role == Role.OWNER and list(owners) == [locked.pk]:
            raise LastOwnerError(
                "The last owner cannot be demoted: make another member owner first, so the organization "
                "always has someone who can manage it."
            )
        previous = locked.role
        locked.role = role
        locked.save(update_fields=["role"])
        record_audit(
            organization_id=locked.organization_id,
            actor=actor,
            action=AuditEntry.Action.ROLE_CHANGED,
            target=locked.user.email,
            details={"from": previous, "to": role},
        )
    membership.role = role
    return membership


def remove_member(membership, *, actor):
    """Take `membership`'s user out of the organization; `actor` may be that user (leaving).

    Only an owner removes an owner; the last owner can neither be removed nor leave.
    """
    leaving = membership.user_id == actor.pk
    with transaction.atomic():
        owners = _lock_owners(membership.organization_id)
        locked = _lock_membership(membership)
        if locked.role == Role.OWNER and not leaving:
            _require_owner(owners, actor, "Only an owner can remove an owner.")
        if locked.role == Role.OWNER and list(owners) == [locked.pk]:
            raise LastOwnerError("The last owner cannot leave or be removed: make another member owner first.")
        locked.delete()
        record_audit(
            organization_id=locked.organization_id,
            actor=actor,
            action=AuditEntry.Action.MEMBER_LEFT if leaving else AuditEntry.Action.MEMBER_REMOVED,
            target=locked.user.email,
            details={"role": locked.role},
        )
