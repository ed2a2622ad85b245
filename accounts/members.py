"""Membership rules: inviting by e-mail, accepting, changing roles, removing and leaving.

Each rule is one function, called alike by the portal views, the admin and the CLI. An
organization always keeps at least one owner; only an owner makes or unmakes owners.
"""

from datetime import timedelta
from urllib.parse import urljoin

from django.conf import settings
from django.core import signing
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import F, Q
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from portal.errors import UserFacingError

from . import tasks
from .audit import record_audit
from .models import AuditEntry, Invitation, Membership, Role, is_api_token_email

INVITATION_MAX_AGE = timedelta(days=7)
_INVITATION_SALT = "accounts.invitation"
# How long a sender may hold an invitation it took to e-mail: longer than a task may run
# (CELERY_TASK_TIME_LIMIT), so a sender still holding it after that has died.
SEND_LEASE = timedelta(minutes=10)
# How long the sweep leaves a new invitation to the task sent when it was made.
RESEND_AFTER = timedelta(minutes=2)
# Senders that may take one invitation (each task retry and each sweep's task is one).
MAX_SEND_ATTEMPTS = 10


class MembershipError(UserFacingError):
    """A membership rule refused the action."""


class LastOwnerError(MembershipError):
    pass


class InvalidInvitation(MembershipError):
    pass


def invitation_token(invitation):
    """The signed, timestamped token of the invitation link."""
    return signing.TimestampSigner(salt=_INVITATION_SALT).sign(str(invitation.code))


_EXPIRED = "This invitation has expired (links are valid for 7 days). Ask the person who invited you to send a new one."


def invitation_from_token(token):
    """The pending invitation a link's token stands for; InvalidInvitation if forged, expired or used."""
    signer = signing.TimestampSigner(salt=_INVITATION_SALT)
    try:
        code = signer.unsign(token, max_age=INVITATION_MAX_AGE)
    except signing.SignatureExpired as exc:
        raise InvalidInvitation(_EXPIRED) from exc
    except signing.BadSignature as exc:
        raise InvalidInvitation("This invitation link is not valid. Check that you copied all of it.") from exc
    invitation = Invitation.objects.select_related("organization", "invited_by").filter(code=code).first()
    if invitation is None or invitation.accepted_at is not None:
        raise InvalidInvitation("This invitation has already been used or was withdrawn.")
    # The link is signed when it is sent, which may be later than the invitation was made.
    if invitation.created_at + INVITATION_MAX_AGE < timezone.now():
        raise InvalidInvitation(_EXPIRED)
    return invitation


def invite_member(organization, *, email, role, actor, link_origin):
    """Invite `email` to `organization` with `role`; a task e-mails them a link valid for 7 days
    once the transaction commits (and the sweep, resend_unsent_invitations, if it never does).

    Inviting an address again replaces its pending invitation (new role, new link).
    `link_origin` is the portal's address as the inviter reached it ("https://portal.example"):
    the link in the e-mail starts with it. Only an owner may invite an owner.
    """
    email = email.strip().lower()
    if is_api_token_email(email):
        raise MembershipError("This address belongs to an API token, not to a person.")
    if Membership.objects.filter(organization=organization, user__email__iexact=email).exists():
        raise MembershipError(f"{email} is already a member of {organization.name}.")
    with transaction.atomic():
        if role == Role.OWNER:
            _require_owner(_lock_owners(organization.pk), actor, "Only an owner can invite another owner.")
        Invitation.objects.pending().filter(organization=organization, email=email).delete()
        invitation = Invitation.objects.create(
            organization=organization, email=email, role=role, invited_by=actor, link_origin=link_origin
        )
        record_audit(
            organization_id=organization.pk,
            actor=actor,
            action=AuditEntry.Action.MEMBER_INVITED,
            target=email,
            details={"role": role},
        )
    transaction.on_commit(lambda: tasks.send_invitation_email.delay(invitation.pk))
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


def _unclaimed(now):
    """Invitations no sender holds: never taken, or taken by a sender whose lease ran out (it died)."""
    return Q(email_claimed_at__isnull=True) | Q(email_claimed_at__lt=now - SEND_LEASE)


def deliver_invitation(invitation_id, *, now=None):
    """E-mail a pending invitation's link once, however many senders try (its task, the task
    delivered again, the sweep). Returns False when there was nothing to send.

    A sender first takes the invitation with a compare-and-set (not sent, and held by no other
    sender, see SEND_LEASE), sends, and only then marks it sent: a sender that dies before the
    mark leaves it unsent, for the sweep to send once the lease has run out. A send the mail
    server refuses gives the invitation back and raises, so that the task retries at once; after
    MAX_SEND_ATTEMPTS takes, nobody tries again (the inviter can invite the address anew).
    """
    now = now or timezone.now()
    taken = (
        Invitation.objects.pending()
        .filter(_unclaimed(now), pk=invitation_id, email_sent_at__isnull=True, email_attempts__lt=MAX_SEND_ATTEMPTS)
        .update(email_claimed_at=now, email_attempts=F("email_attempts") + 1)
    )
    invitation = Invitation.objects.select_related("organization", "invited_by").filter(pk=invitation_id).first()
    if not taken or invitation is None:
        return False
    link = urljoin(invitation.link_origin, reverse("invitation-accept", args=[invitation_token(invitation)]))
    context = {
        "invitation": invitation,
        "accept_url": link,
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
        Invitation.objects.filter(pk=invitation_id, email_claimed_at=now).update(email_claimed_at=None)
        raise
    Invitation.objects.filter(pk=invitation_id).update(email_sent_at=timezone.now())
    return True


def resend_unsent_invitations(*, now=None):
    """The periodic sweep: send again the e-mail of every pending invitation that has not gone
    out (its task lost by the broker, or its sender dead), once its own task had time to run;
    expired invitations are left alone. Returns how many were sent to the workers."""
    now = now or timezone.now()
    unsent = list(
        Invitation.objects.pending()
        .filter(
            _unclaimed(now),
            email_sent_at__isnull=True,
            email_attempts__lt=MAX_SEND_ATTEMPTS,
            created_at__lte=now - RESEND_AFTER,
            created_at__gt=now - INVITATION_MAX_AGE,
        )
        .exclude(link_origin="")
        .values_list("pk", flat=True)
    )
    for invitation_id in unsent:
        tasks.send_invitation_email.delay(invitation_id)
    return len(unsent)


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
    operators in the admin, the CLI). Only an owner or a portal operator adds an owner. An API
    token's account is never a member: its token carries its role."""
    if user.is_api_token:
        raise MembershipError("An API token's account cannot be a member.")
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
