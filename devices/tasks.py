"""Celery tasks of the device lifecycle: small, idempotent, given ids; the rules live in activation.py."""

from celery import shared_task

from devices import activation


@shared_task(acks_late=True, ignore_result=True, soft_time_limit=30, time_limit=60)
def process_activation_task(operation_id):
    """Process one activation operation (idempotent: a finished operation is left alone)."""
    activation.process_activation(operation_id)


@shared_task(acks_late=True, ignore_result=True)
def resend_stuck_activations_task():
    """Celery beat, every 15 s: re-send operations left assigning for more than 30 s."""
    return activation.resend_stuck_activations()


@shared_task(acks_late=True, ignore_result=True)
def delete_finished_activations_task():
    """Celery beat, hourly: delete operations finished more than 7 days ago."""
    return activation.delete_finished_activations()
