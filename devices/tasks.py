"""Periodic device housekeeping, run by Celery beat. Each task is one call to a domain function."""

import logging

from celery import shared_task

from . import commands, telemetry

logger = logging.getLogger(__name__)


@shared_task(acks_late=True, ignore_result=True)
def expire_commands():
    expired = commands.expire_commands()
    if expired:
        logger.info("expired %d commands", expired)


@shared_task(acks_late=True, ignore_result=True)
def record_connectivity_changes():
    marked = telemetry.record_connectivity_changes()
    if marked:
        logger.info("marked %d devices offline", marked)


@shared_task(acks_late=True, ignore_result=True)
def purge_old_heartbeats():
    deleted = telemetry.purge_old_heartbeats()
    if deleted:
        logger.info("purged %d heartbeats older than the retention", deleted)
