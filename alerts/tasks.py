"""Celery tasks of the offline alerts: given ids and times, each one call to alerts/sending.py."""

from celery import shared_task
from django.utils.dateparse import parse_datetime

from . import sending


@shared_task(acks_late=True, ignore_result=True, soft_time_limit=60, time_limit=90)
def plan_offline_alerts(until):
    """After each connectivity sweep (`until`: its start, ISO 8601): one task per member to e-mail."""
    for membership_id in sending.members_due(until=parse_datetime(until)):
        send_offline_alert.delay(membership_id, until)


@shared_task(acks_late=True, ignore_result=True, soft_time_limit=60, time_limit=90)
def send_offline_alert(membership_id, until):
    """Idempotent: a second run for the same member and sweep sends nothing."""
    sending.send_offline_alert(membership_id, until=parse_datetime(until))
