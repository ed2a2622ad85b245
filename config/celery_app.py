import os

from celery import Celery, signals
from celery.contrib.django.task import DjangoTask
from django.db import InterfaceError, OperationalError, close_old_connections

from portal.unavailable import RETRY_AFTER_SECONDS, database_unreachable

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")


class PortalTask(DjangoTask):
    """Celery's Django task (delay_on_commit) that, in a worker, is retried a few seconds later when
    it failed because PostgreSQL could not be reached, as a device answered 503 retries.

    A worker's connections are kept between tasks, so a PostgreSQL restart fails the next task of
    each, and tasks it caught in the middle: their messages were gone, the activations they were
    processing waited for the sweeper (up to 45 s) and an invitation's e-mail was never sent.
    Tasks are idempotent, so running one again is safe; the retry starts on a new connection
    (start_task_like_a_request).
    """

    def __call__(self, *args, **kwargs):
        try:
            return super().__call__(*args, **kwargs)
        except (OperationalError, InterfaceError) as error:
            if self.request.is_eager or not database_unreachable():
                raise
            raise self.retry(exc=error, countdown=RETRY_AFTER_SECONDS * 2**self.request.retries) from error


app = Celery("portal", task_cls=PortalTask)
# Every Celery setting lives in Django settings under the CELERY_ prefix.
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@signals.task_prerun.connect
def start_task_like_a_request(sender=None, **kwargs):
    """Before each task in a worker, retire database connections the way Django does per request.

    CELERY_DB_REUSE_MAX keeps a worker's connection between tasks (a new one per task was most of
    an activation's worker CPU), so something must still close a connection that broke (say,
    PostgreSQL restarted) or outlived CONN_MAX_AGE (and re-arm CONN_HEALTH_CHECKS, if on). Eager tasks
    run inside the caller's transaction and are left alone.
    """
    if not getattr(sender.request, "is_eager", False):
        close_old_connections()
