"""Webhook tasks, on the webhooks queue (CELERY_TASK_ROUTES): small, idempotent, given ids or
nothing. The rules live in delivery.py and endpoints.py; each task is one call to one of them."""

import logging
from smtplib import SMTPException

from celery import shared_task

from . import delivery, endpoints

logger = logging.getLogger(__name__)


# The time limits leave room for a round (delivery.ROUND_SECONDS) and its last send's timeout.
@shared_task(acks_late=True, ignore_result=True, soft_time_limit=30, time_limit=45)
def deliver_to_endpoint(endpoint_id):
    """One round of endpoint `endpoint_id`'s due deliveries (none if another task holds its lease)."""
    delivery.deliver_round(endpoint_id)


@shared_task(acks_late=True, ignore_result=True)
def wake_due_endpoints():
    """Celery beat, every 15 s: send a task for each endpoint with due deliveries and none at work."""
    return delivery.wake_due_endpoints()


@shared_task(acks_late=True, ignore_result=True)
def purge_old_events():
    """Celery beat, hourly: delete events (and their deliveries) past the retention."""
    return endpoints.purge_old_events()


@shared_task(acks_late=True, ignore_result=True, autoretry_for=(SMTPException, OSError), retry_backoff=True)
def send_disabled_email(endpoint_id):
    """Tell the organization's owners and admins that endpoint `endpoint_id` was disabled."""
    endpoints.notify_disabled(endpoint_id)
