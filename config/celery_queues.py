"""The Celery queues: one per kind of work, so that no kind waits behind another's backlog (a
million-row import never delays an activation, a slow webhook receiver never delays an e-mail).

Every queue is named after CELERY_QUEUE (`<CELERY_QUEUE>-<kind>`), and the settings list them all
in CELERY_TASK_QUEUES, so a worker started without -Q consumes every queue: a one-worker deployment
needs nothing more. Larger ones start a worker per kind with `-Q <CELERY_QUEUE>-<kind>`.
"""

from kombu import Queue

# Tasks by the kind of work they do; the rest (housekeeping) go to CELERY_QUEUE itself. An exact
# task name wins over a pattern (Celery's MapRoute), so one task of a module can go elsewhere.
TASKS_BY_KIND = {
    "activations": [
        "devices.tasks.process_activations_task",
        "devices.tasks.resend_stuck_activations_task",
    ],
    "imports": ["vendors.tasks.*"],
    "email": [
        "accounts.tasks.send_invitation_email",
        "accounts.tasks.resend_unsent_invitations_task",
        "alerts.tasks.*",
        "releaserequests.tasks.tell_holder",
        "releaserequests.tasks.tell_requester",
        "webhooks.tasks.send_disabled_email",
    ],
    "telemetry": [
        "devices.tasks.write_buffered_heartbeats_task",
        "devices.tasks.record_connectivity_changes",
        "devices.tasks.maintain_heartbeat_partitions",
        "devices.tasks.roll_up_heartbeats",
    ],
    "webhooks": ["webhooks.tasks.*"],
}


def queue_name(default_queue, kind):
    return f"{default_queue}-{kind}"


def task_queues(default_queue):
    """Every queue a worker started without -Q consumes."""
    return [Queue(default_queue), *(Queue(queue_name(default_queue, kind)) for kind in TASKS_BY_KIND)]


def task_routes(default_queue):
    return {task: {"queue": queue_name(default_queue, kind)} for kind, tasks in TASKS_BY_KIND.items() for task in tasks}
