"""Two rules racing: run from two threads at the same instant, each in its own real transaction,
with proof that they overlapped. Tests using it need a transactional database
(`django_db(transaction=True)`): each thread has its own connection and sees only committed rows."""

import threading
import time

from django.db import connection, transaction

LOCK_WAIT_LIMIT = 20  # seconds; only reached when the second rule never waits, i.e. the test fails


def race(first, second, *, then=None):
    """Run `first` and `second` from two threads at the same instant, each in its own transaction;
    `first` commits only once `second` waits for one of its locks (and, if given, `then` has run in
    first's transaction after that). Returns (outcome of first, outcome of second, whether second
    waited); an outcome is the rule's result or its exception."""
    start = threading.Barrier(2, timeout=LOCK_WAIT_LIMIT)
    outcomes = {}
    second_waited = threading.Event()

    def run_first():
        try:
            with transaction.atomic():
                outcomes["first"] = first()
                start.wait()
                wait_until_someone_waits_for(second_waited)
                if then is not None:
                    then()
        except Exception as exc:  # the outcome is what the test looks at
            start.abort()  # a first rule that failed lets the second go at once
            outcomes["first"] = exc
        finally:
            connection.close()

    def run_second():
        try:
            start.wait()
            outcomes["second"] = second()
        except Exception as exc:
            outcomes["second"] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run_first), threading.Thread(target=run_second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes["first"], outcomes["second"], second_waited.is_set()


def wait_until_someone_waits_for(waited):
    """Set `waited` once another session waits for a lock this one holds (pg_locks is read live,
    unlike pg_stat_activity, which a transaction sees as a snapshot)."""
    deadline = time.monotonic() + LOCK_WAIT_LIMIT
    with connection.cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute(
                "SELECT EXISTS (SELECT 1 FROM pg_locks"
                " WHERE NOT granted AND pg_backend_pid() = ANY(pg_blocking_pids(pid)))"
            )
            if cursor.fetchone()[0]:
                waited.set()
                return
            time.sleep(0.02)
