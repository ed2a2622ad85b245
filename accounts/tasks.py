"""Tasks of the accounts app: small, idempotent, take ids; the rules live in accounts/members.py."""

import logging
from importlib import import_module
from smtplib import SMTPException

from celery import shared_task
from django.conf import settings

from . import members

logger = logging.getLogger(__name__)


@shared_task(
    acks_late=True,
    ignore_result=True,
    autoretry_for=(SMTPException, OSError),
    retry_backoff=True,
    max_retries=8,
)
def send_invitation_email(invitation_id):
    """E-mail the link of invitation `invitation_id` (skipped if already sent or being sent,
    accepted or withdrawn)."""
    if not members.deliver_invitation(invitation_id):
        logger.info("invitation %s: already sent, being sent, accepted or gone", invitation_id)


@shared_task(acks_late=True, ignore_result=True)
def resend_unsent_invitations_task():
    """Celery beat: send again the invitations whose e-mail never went out."""
    sent = members.resend_unsent_invitations()
    if sent:
        logger.info("sent %d unsent invitation(s) to the workers again", sent)


@shared_task(acks_late=True, ignore_result=True)
def clear_expired_sessions():
    """Celery beat, daily: delete expired sessions, which live in PostgreSQL (so that a Redis restart
    signs nobody out) and would otherwise pile up there."""
    import_module(settings.SESSION_ENGINE).SessionStore.clear_expired()
