"""Celery tasks of the device lifecycle: small, idempotent, given ids or nothing (the activation
task and the periodic ones find their work in the database). The rules live in activation.py (fed
by activation_queue.py), commands.py, telemetry.py, heartbeat_partitions.py and rollups.py; each
task is one call to one of them."""

import logging

from celery import shared_task
from django.utils import timezone

from alerts.tasks import plan_offline_alerts
from devices import activation_queue, commands, heartbeat_intake, heartbeat_partitions, rollups, telemetry

logger = logging.getLogger(__name__)


# The time limits leave room for a drain's time budget (activation_queue.DRAIN_SECONDS) and its last batch.
@shared_task(acks_late=True, ignore_result=True, soft_time_limit=30, time_limit=60)
def process_activations_task():
    """Process the activation operations waiting. Sent by the doorbell a committed request rings
    (unless a task is on its way or at work), by a task asking for help or to go on, and by the
    sweeper. Idempotent: only operations still assigning are processed, each once."""
    activation_queue.process_waiting_activations()


@shared_task(acks_late=True, ignore_result=True)
def resend_stuck_activations_task():
    """Celery beat, every 15 s: ring again for operations left assigning for more than 30 s."""
    return activation_queue.resend_stuck_activations()


@shared_task(acks_late=True, ignore_result=True)
def delete_finished_activations_task():
    """Celery beat, hourly: delete operations finished more than 7 days ago."""
    return activation_queue.delete_finished_activations()


@shared_task(acks_late=True, ignore_result=True)
def expire_commands():
    expired = commands.expire_commands()
    if expired:
        logger.info("expired %d commands", expired)


@shared_task(acks_late=True, ignore_result=True)
def record_connectivity_changes():
    """Celery beat, every minute: mark stale devices offline, then plan the offline alerts of the
    changes up to the sweep's start (its own events are committed by then)."""
    now = timezone.now()
    marked = telemetry.record_connectivity_changes(now=now)
    if marked:
        logger.info("marked %d devices offline", marked)
    plan_offline_alerts.delay(now.isoformat())


@shared_task(acks_late=True, ignore_result=True)
def maintain_heartbeat_partitions():
    """Celery beat, hourly: partition the coming days, drop the days past the retention."""
    done = heartbeat_partitions.maintain_heartbeat_partitions()
    if done.created or done.dropped or done.deleted:
        logger.info(
            "heartbeat partitions: created %s, dropped %s, %d rows moved, %d deleted",
            [str(day) for day in done.created],
            [str(day) for day in done.dropped],
            done.moved,
            done.deleted,
        )


@shared_task(acks_late=True, ignore_result=True, soft_time_limit=240, time_limit=300)
def roll_up_heartbeats():
    """Celery beat, every minute: roll up the heartbeats of the intervals closed since the last run."""
    rollups.roll_up_heartbeats()


# Beat sends it every second; it drains for about a second, so one worker process keeps up with a
# steady fleet and a backlog is shared by every process free (the consumer group splits it). Once
# caught up it writes what arrived every quarter of a second: devices are seen within that, and a
# batch still holds a quarter second of the fleet.
WRITER_PAUSE = 0.25


@shared_task(acks_late=True, ignore_result=True, soft_time_limit=30, time_limit=60)
def write_buffered_heartbeats_task():
    """Write the heartbeats waiting in the intake stream (heartbeat_intake.write_buffered_heartbeats).
    Idempotent: entries are acknowledged after their batch commits, and writing one twice changes nothing."""
    if heartbeat_intake.batching_enabled():
        heartbeat_intake.write_buffered_heartbeats(seconds=1.0, pause=WRITER_PAUSE)
