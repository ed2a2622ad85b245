"""Real Celery worker processes for a test, started as production starts them (`celery -A config
worker`, with -Q or without), on queues named after a CELERY_QUEUE of the test's own."""

import contextlib
import os
import uuid

from bench.common import start_celery_worker, stop_processes
from config.celery_app import app as celery_app
from config.celery_queues import queue_name
from portal.redis import redis_client

from .conftest import database_url_for_subprocess, tasks_sent_to_queues_of, wait_for


class Workers:
    def __init__(self, logs, env):
        self.logs = logs
        self.prefix = f"test-{uuid.uuid4().hex[:8]}"
        self.env = os.environ | {
            "DJANGO_SETTINGS_MODULE": "config.settings.test",
            "DATABASE_URL": database_url_for_subprocess(),
            "CELERY_QUEUE": self.prefix,
            "CELERY_TASK_ALWAYS_EAGER": "False",
            **env,
        }
        self.processes = []

    def start(self, *kinds, concurrency=2):
        """A worker on the queues of `kinds` (config/celery_queues.py), or on every queue (no -Q)
        when none is given; returns its process once it answers a ping."""
        name = f"{self.prefix}-{len(self.processes)}"
        queues = ",".join(queue_name(self.prefix, kind) for kind in kinds) or None
        process = start_celery_worker(
            self.env,
            queue=queues,
            concurrency=concurrency,
            prefetch=1,
            log=self.logs / f"{name}.log",
            extra=("--hostname", f"{name}@%h", "--loglevel", "INFO"),
        )
        self.processes.append(process)
        wait_for(lambda: celery_app.control.ping(destination=[f"{name}@{os.uname().nodename}"], timeout=0.5), 30)
        return process

    def waiting_in(self, kind):
        """Messages waiting in the queue of `kind`."""
        return redis_client().llen(queue_name(self.prefix, kind))


@contextlib.contextmanager
def celery_workers(logs, **env):
    """Workers (none started yet) whose queues this process's tasks are sent to meanwhile."""
    running = Workers(logs, env)
    try:
        with tasks_sent_to_queues_of(running.prefix):
            yield running
    finally:
        stop_processes(running.processes)
