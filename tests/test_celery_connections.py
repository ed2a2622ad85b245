"""Celery workers keep their database connection between tasks, but never a broken or expired one."""

import time

from django.db import connection

from config.celery_app import start_task_like_a_request
from devices.tasks import process_activations_task


def test_a_worker_task_keeps_a_healthy_connection(transactional_db):
    connection.ensure_connection()
    connection.close_at = time.monotonic() + 60  # as if CONN_MAX_AGE were 60 s
    before = connection.connection

    start_task_like_a_request(sender=process_activations_task)

    assert connection.connection is before


def test_a_worker_task_starts_on_a_new_connection_after_a_database_error(transactional_db):
    connection.ensure_connection()
    connection.connection.close()  # as if PostgreSQL had restarted
    connection.errors_occurred = True

    start_task_like_a_request(sender=process_activations_task)

    assert connection.connection is None
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        assert cursor.fetchone() == (1,)


def test_a_worker_task_starts_on_a_new_connection_once_the_old_one_is_past_conn_max_age(transactional_db):
    connection.ensure_connection()
    connection.close_at = 0  # CONN_MAX_AGE has passed

    start_task_like_a_request(sender=process_activations_task)

    assert connection.connection is None
