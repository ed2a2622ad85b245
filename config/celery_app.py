import os

from celery import Celery, signals
from django.db import close_old_connections

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

app = Celery("portal")
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
