"""Celery tasks of release requests: given ids, each one call to notices.py or rules.py."""

import logging
from smtplib import SMTPException

from celery import shared_task

from . import notices, rules

logger = logging.getLogger(__name__)

_EMAIL = {
    "acks_late": True,
    "ignore_result": True,
    "autoretry_for": (SMTPException, OSError),
    "retry_backoff": True,
    "max_retries": 8,
    "soft_time_limit": 60,
    "time_limit": 90,
}


@shared_task(**_EMAIL)
def tell_holder(release_request_id):
    """Idempotent: the holder's owners and admins are e-mailed a request once."""
    if not notices.tell_holder(release_request_id):
        logger.info("release request %s: holder already told, or no longer open", release_request_id)


@shared_task(**_EMAIL)
def tell_requester(release_request_id):
    """Idempotent: the requester is e-mailed the answer once."""
    if not notices.tell_requester(release_request_id):
        logger.info("release request %s: requester already told, or no answer yet", release_request_id)


@shared_task(acks_late=True, ignore_result=True, soft_time_limit=60, time_limit=90)
def sweep_requests():
    """Celery beat: mark the requests nobody answered in time expired, and send the e-mails whose
    task the broker lost (the database says which: notices.untold)."""
    expired = rules.expire_requests()
    if expired:
        logger.info("%d release request(s) expired", expired)
    holders, requesters = notices.untold()
    for pk in holders:
        tell_holder.delay(pk)
    for pk in requesters:
        tell_requester.delay(pk)
