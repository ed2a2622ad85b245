"""Invitation e-mails: marked sent only once sent, so that a sender dying on the way loses nothing;
the periodic sweep sends what never went out, and however many senders try, one e-mail goes."""

import re
import threading
from datetime import timedelta
from smtplib import SMTPException

import pytest
from django.core import mail
from django.core.mail.backends.locmem import EmailBackend as OutboxBackend
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from accounts import tasks
from accounts.members import (
    MAX_SEND_ATTEMPTS,
    SEND_LEASE,
    deliver_invitation,
    invitation_token,
    resend_unsent_invitations,
)
from accounts.models import Invitation, Role

from .factories import MembershipFactory, OrganizationFactory

INVITED = "new.person@example.test"
LATER = timedelta(minutes=5)  # past the sweep's wait for the task, within the sending lease


@pytest.fixture(autouse=True)
def no_portal_origin(settings):
    """Links lead to the address the inviter reached the portal at (PORTAL_ORIGIN would win)."""
    settings.PORTAL_ORIGIN = ""


def _invite_through_the_page(client, organization, owner, capture_on_commit, *, task_runs=True):
    client.force_login(owner)
    with capture_on_commit(execute=task_runs):
        response = client.post(reverse("members", args=[organization.code]), {"email": INVITED, "role": Role.VIEWER})
    assert response.status_code == 302
    return Invitation.objects.get(email=INVITED)


def _link_in(message):
    return re.search(r"https?://\S+/accounts/invitations/\S+/", message.body).group(0)


def _assert_the_mail_invites_to(organization, client):
    (message,) = mail.outbox
    assert message.to == [INVITED]
    assert organization.name in message.subject
    link = _link_in(message)
    assert link.startswith("http://testserver/accounts/invitations/")
    client.logout()
    page = client.get(link.removeprefix("http://testserver"))
    assert page.status_code == 200
    assert organization.name in page.text
    assert INVITED in page.text


@pytest.mark.django_db
def test_the_invitation_mail_is_in_the_outbox_with_a_link_that_opens_the_invitation(
    client, organization, owner, django_capture_on_commit_callbacks
):
    invitation = _invite_through_the_page(client, organization, owner, django_capture_on_commit_callbacks)
    _assert_the_mail_invites_to(organization, client)
    invitation.refresh_from_db()
    assert invitation.email_sent_at is not None


@pytest.mark.django_db
def test_an_invitation_whose_task_never_ran_is_sent_by_the_sweep(
    client, organization, owner, django_capture_on_commit_callbacks
):
    invitation = _invite_through_the_page(
        client, organization, owner, django_capture_on_commit_callbacks, task_runs=False
    )
    assert mail.outbox == []

    assert resend_unsent_invitations(now=invitation.created_at + LATER) == 1

    _assert_the_mail_invites_to(organization, client)
    invitation.refresh_from_db()
    assert invitation.email_sent_at is not None


@pytest.mark.django_db
def test_the_sweep_leaves_an_invitation_just_made_to_its_own_task(
    client, organization, owner, django_capture_on_commit_callbacks
):
    _invite_through_the_page(client, organization, owner, django_capture_on_commit_callbacks, task_runs=False)
    assert resend_unsent_invitations() == 0
    assert mail.outbox == []


@pytest.mark.django_db
def test_an_invitation_already_sent_is_not_sent_again_by_the_sweep(
    client, organization, owner, django_capture_on_commit_callbacks
):
    invitation = _invite_through_the_page(client, organization, owner, django_capture_on_commit_callbacks)
    assert resend_unsent_invitations(now=invitation.created_at + LATER) == 0
    tasks.resend_unsent_invitations_task()
    assert len(mail.outbox) == 1


@pytest.mark.django_db
def test_the_sweep_sends_neither_accepted_nor_expired_invitations(organization, owner):
    now = timezone.now()
    Invitation.objects.create(organization=organization, email="joined@example.test", invited_by=owner, accepted_at=now)
    Invitation.objects.create(
        organization=organization, email="late@example.test", invited_by=owner, created_at=now - timedelta(days=8)
    )
    assert resend_unsent_invitations(now=now + LATER) == 0
    assert mail.outbox == []


class KilledWorkerBackend(OutboxBackend):
    """The worker is killed while it talks to the mail server: nothing after the send runs, not
    even `except Exception` handlers (SystemExit is what a worker's warm shutdown raises)."""

    def send_messages(self, email_messages):
        raise SystemExit(1)


@pytest.mark.django_db
def test_a_worker_killed_while_sending_leaves_the_invitation_unsent_and_the_sweep_sends_it(
    client, organization, owner, settings, django_capture_on_commit_callbacks
):
    invitation = _invite_through_the_page(
        client, organization, owner, django_capture_on_commit_callbacks, task_runs=False
    )
    Invitation.objects.filter(pk=invitation.pk).update(created_at=invitation.created_at - LATER)
    settings.MAILERS = {"default": {"BACKEND": "tests.test_invitation_delivery.KilledWorkerBackend"}}
    with pytest.raises(SystemExit):
        deliver_invitation(invitation.pk)
    invitation.refresh_from_db()
    assert invitation.email_sent_at is None
    settings.MAILERS = {"default": {"BACKEND": "django.core.mail.backends.locmem.EmailBackend"}}

    # While the dead sender's lease runs, nobody else sends: it might still be alive and sending.
    assert resend_unsent_invitations() == 0
    Invitation.objects.filter(pk=invitation.pk).update(
        email_claimed_at=invitation.email_claimed_at - SEND_LEASE - timedelta(seconds=1)
    )
    assert resend_unsent_invitations() == 1
    _assert_the_mail_invites_to(organization, client)


class RefusingBackend(OutboxBackend):
    def send_messages(self, email_messages):
        raise SMTPException("421 service not available")


@pytest.mark.django_db
def test_a_send_the_mail_server_refused_is_retried_at_once(organization, owner, settings):
    invitation = Invitation.objects.create(organization=organization, email=INVITED, invited_by=owner)
    settings.MAILERS = {"default": {"BACKEND": "tests.test_invitation_delivery.RefusingBackend"}}
    with pytest.raises(SMTPException):
        deliver_invitation(invitation.pk)
    settings.MAILERS = {"default": {"BACKEND": "django.core.mail.backends.locmem.EmailBackend"}}
    assert deliver_invitation(invitation.pk)
    assert len(mail.outbox) == 1


@pytest.mark.django_db
def test_an_address_the_mail_server_always_refuses_is_given_up_after_a_few_attempts(organization, owner, settings):
    invitation = Invitation.objects.create(organization=organization, email=INVITED, invited_by=owner, link_origin="x")
    settings.MAILERS = {"default": {"BACKEND": "tests.test_invitation_delivery.RefusingBackend"}}
    now = timezone.now()
    for attempt in range(MAX_SEND_ATTEMPTS):  # the task's retries and the sweeps' tasks, hours apart
        with pytest.raises(SMTPException):
            deliver_invitation(invitation.pk, now=now + timedelta(hours=attempt))
    later = now + timedelta(days=1)
    assert not deliver_invitation(invitation.pk, now=later)
    assert resend_unsent_invitations(now=later) == 0


@pytest.mark.django_db
def test_a_link_sent_days_after_the_invitation_expires_seven_days_after_it_was_made(client, organization, owner):
    made = timezone.now() - timedelta(days=8)
    invitation = Invitation.objects.create(organization=organization, email=INVITED, invited_by=owner, created_at=made)
    page = client.get(reverse("invitation-accept", args=[invitation_token(invitation)]))
    assert "This invitation has expired" in page.text


class SlowMailServer(OutboxBackend):
    """Holds each message until the test lets it go, so that another sender can try meanwhile."""

    entered = threading.Event()
    let_go = threading.Event()

    def send_messages(self, email_messages):
        type(self).entered.set()
        assert type(self).let_go.wait(20)
        return super().send_messages(email_messages)


@pytest.mark.django_db(transaction=True)
def test_a_sweep_racing_the_task_sends_one_mail(settings):
    organization = OrganizationFactory(name="Initech")
    owner = MembershipFactory(organization=organization, role=Role.OWNER).user
    invitation = Invitation.objects.create(
        organization=organization,
        email=INVITED,
        invited_by=owner,
        link_origin="http://testserver",
        created_at=timezone.now() - LATER,
    )
    settings.MAILERS = {"default": {"BACKEND": "tests.test_invitation_delivery.SlowMailServer"}}
    SlowMailServer.entered.clear()
    SlowMailServer.let_go.clear()
    outcome = {}

    def task():
        try:
            outcome["task"] = deliver_invitation(invitation.pk)
        finally:
            connection.close()

    sender = threading.Thread(target=task)
    sender.start()
    try:
        assert SlowMailServer.entered.wait(20)
        # Both run while the task is inside its send: the sweep, and a redelivery of the task.
        swept = resend_unsent_invitations()
        redelivered = deliver_invitation(invitation.pk)
        still_sending = not SlowMailServer.let_go.is_set() and sender.is_alive()
    finally:
        SlowMailServer.let_go.set()
        sender.join()

    assert still_sending
    assert swept == 0
    assert redelivered is False
    assert outcome["task"] is True
    assert len(mail.outbox) == 1
    assert Invitation.objects.get(pk=invitation.pk).email_sent_at is not None
