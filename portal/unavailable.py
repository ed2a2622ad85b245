"""What a request meets when PostgreSQL or Redis cannot be reached: 503 with Retry-After (a device
retries, a person reloads), after running it once more if PostgreSQL had closed its kept
connection before any of it reached the database.

Database connections are kept between requests (CONN_MAX_AGE) and, to spare a `SELECT 1` each
time, not checked before use (CONN_HEALTH_CHECKS off): after a PostgreSQL restart the first
statement on each kept connection fails. When that statement was the request's first and none
after it succeeded, nothing of the request reached the database, whatever its method, and it runs
again on a new connection. Celery tasks are retried instead (config/celery_app.PortalTask).
"""

import logging

import kombu.exceptions
import redis
from django.db import DEFAULT_DB_ALIAS, InterfaceError, OperationalError, connection, connections
from django.http import HttpResponse, JsonResponse

logger = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 2
API_PREFIX = "/api/"
UNAVAILABLE_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Briefly unavailable</title></head>
<body><h1>Briefly unavailable</h1>
<p>The portal cannot reach a service it depends on. Please try again in a moment.</p></body></html>
"""


class _FirstStatementWatch:
    """An execute wrapper watching a request until one of its statements succeeds (usually the
    first: one wrapped call per request). Notes whether the first statement failed on a connection
    kept from an earlier request that turned out closed."""

    def __init__(self, database):
        self.database = database
        self.kept = database.connection is not None
        self.started = False
        self.found_closed = False
        self.reached_database = False

    def __call__(self, execute, sql, params, many, context):
        first, self.started = not self.started, True
        try:
            result = execute(sql, params, many, context)
        except (OperationalError, InterfaceError):
            if first:
                self.found_closed = self.kept and database_unreachable(self.database)
            raise
        self.reached_database = True
        self.database.execute_wrappers.remove(self)  # nothing will be run again now
        return result

    @property
    def may_run_again(self):
        return self.found_closed and not self.reached_database


def database_unreachable(database=connection):
    """After a database error: is it that the connection is gone (closed by the server, or never
    made) rather than that the statement was refused (a deadlock, a timeout)?"""
    raw = database.connection
    return raw is None or getattr(raw, "closed", False) or getattr(raw, "broken", False)


class ServiceUnavailableMiddleware:
    """503 with Retry-After when PostgreSQL or Redis cannot be reached (JSON under /api/, a plain
    page elsewhere), after running the request again if its kept database connection was closed.

    Listed before every middleware that may touch the database, so that running it again runs
    them too.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        database = connections[DEFAULT_DB_ALIAS]  # this thread's, looked up once
        watch = _FirstStatementWatch(database)
        database.execute_wrappers.append(watch)
        try:
            response = self.get_response(request)
        finally:
            if watch in database.execute_wrappers:
                database.execute_wrappers.remove(watch)
        if not watch.may_run_again:
            return response
        # Nothing of the request reached the database, whatever its method: safe to run it all again.
        logger.info(
            "The kept database connection had been closed (PostgreSQL restarted?): running %s again", request.path
        )
        database.close()
        return self.get_response(request)

    def process_exception(self, request, exception):
        if _unreachable(exception):
            logger.warning("Answering 503: %s", exception)
            return unavailable_response(request)
        return None


def _unreachable(exception):
    if isinstance(exception, InterfaceError | OperationalError):
        return database_unreachable()
    # Redis as the cache (connection refused, or no answer within REDIS_SOCKET_TIMEOUT) and as the broker.
    return isinstance(exception, redis.ConnectionError | redis.TimeoutError | kombu.exceptions.OperationalError)


def unavailable_response(request):
    message = "The service is briefly unavailable; retry after the number of seconds in Retry-After."
    if request.path.startswith(API_PREFIX):
        response = JsonResponse({"error": {"code": "unavailable", "message": message}}, status=503)
    else:
        response = HttpResponse(UNAVAILABLE_PAGE, status=503)
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response
