"""Reads of the read-only pages from a streaming replica (the "replica" alias, DATABASE_REPLICA_URL).

The pages that may read from it are named in DATABASE_REPLICA_PAGES (URL names of views that do
not write on GET); ReplicaReadsMiddleware keeps, per request, whether it is one of them and whether
it has written; ReplicaRouter then sends the ORM's reads to the replica only while all of these hold:
- the page is one of them and the request is a GET or HEAD;
- nothing in the request has written (db_for_write was asked) and no transaction is open on the
  primary: a read that follows a write sees the write;
- the client has not written in the last DATABASE_REPLICA_PIN_SECONDS (a cookie set by every
  request that wrote): the page after a POST and its redirect shows what the POST did;
- the model is not one of those that say who may see the page (users, sessions, second factors,
  memberships, organizations, vendor staff), always read on the primary;
- the replica answers and lags at most DATABASE_REPLICA_MAX_LAG seconds (replica_usable, checked at
  most every CHECK_SECONDS per process).
A replica that fails in the middle of a page makes the page run again on the primary, never a 500.
Migrations run on the primary alone.
"""

import contextvars
import dataclasses
import logging
import threading
import time

from django.conf import settings
from django.core.exceptions import MiddlewareNotUsed
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections

from portal.unavailable import API_PREFIX

logger = logging.getLogger(__name__)

REPLICA = "replica"
PIN_COOKIE = "primary_reads"
CHECK_SECONDS = 2.0
SAFE_METHODS = ("GET", "HEAD")
# Read on the primary whatever the page: a session or second factor created a moment ago must be
# found by the next request, and a password changed must sign the other sessions out at once; who
# may see a page (memberships, vendor staff, an organization's two-factor requirement) takes effect
# on the next page too, not once the replica has caught up.
PRIMARY_ONLY_APPS = {"sessions", "otp_totp", "otp_static", "django_otp_webauthn"}
PRIMARY_ONLY_MODELS = {
    "accounts.user",
    "accounts.usersession",
    "accounts.membership",
    "accounts.organization",
    "vendors.vendorstaff",
}

# Seconds behind the primary: 0 when the replica streams and has replayed all it received (an idle
# primary sends nothing, so the last replayed transaction may be old on a replica that is current);
# otherwise the age of the last transaction it replayed (none yet: too far behind to tell).
LAG_SQL = """
SELECT CASE
    WHEN NOT pg_is_in_recovery() THEN NULL
    WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn()
        AND EXISTS (SELECT 1 FROM pg_stat_wal_receiver WHERE status = 'streaming') THEN 0
    ELSE COALESCE(EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp()), 1e9)
END
"""


@dataclasses.dataclass
class _RequestReads:
    opted_in: bool = False
    pinned: bool = False
    wrote: bool = False
    replica_failed: bool = False


_request = contextvars.ContextVar("replica_reads", default=None)


class _Health:
    """This process's last look at the replica: usable or not, and when it looked."""

    def __init__(self):
        self.lock = threading.Lock()
        self.checked_at = float("-inf")
        self.usable = False

    def mark_unusable(self):
        with self.lock:
            self.usable, self.checked_at = False, time.monotonic()


_health = _Health()


def replica_lag():
    """Seconds the replica is behind the primary (None: it is not a replica at all). Raises
    DatabaseError when it cannot be reached."""
    with connections[REPLICA].cursor() as cursor:
        cursor.execute(LAG_SQL)
        lag = cursor.fetchone()[0]
    return None if lag is None else float(lag)


def replica_usable():
    """Whether reads may go to the replica now: it answers and lags at most DATABASE_REPLICA_MAX_LAG
    seconds. Looked up at most every CHECK_SECONDS per process (the answer is kept in memory)."""
    if time.monotonic() - _health.checked_at < CHECK_SECONDS:
        return _health.usable
    with _health.lock:
        if time.monotonic() - _health.checked_at >= CHECK_SECONDS:
            try:
                lag = replica_lag()
            except DatabaseError as error:
                logger.warning("Reading from the primary: the replica cannot be reached (%s)", error)
                connections[REPLICA].close()
                lag = None
            _health.usable = lag is not None and lag <= settings.DATABASE_REPLICA_MAX_LAG
            _health.checked_at = time.monotonic()
    return _health.usable


def _primary_only(model):
    return model._meta.app_label in PRIMARY_ONLY_APPS or model._meta.label_lower in PRIMARY_ONLY_MODELS


class ReplicaRouter:
    """The primary for every write and every migration; the replica for the reads the module
    docstring lists, when the "replica" alias exists."""

    def db_for_read(self, model, **hints):
        # The primary by name, not None: Django would otherwise follow an instance read from the
        # replica earlier in the request (the `instance` hint) back to the replica after a write.
        state = _request.get()
        if state is None or not state.opted_in or state.pinned or state.wrote or state.replica_failed:
            return DEFAULT_DB_ALIAS
        if _primary_only(model) or connections[DEFAULT_DB_ALIAS].in_atomic_block or not replica_usable():
            return DEFAULT_DB_ALIAS
        return REPLICA

    def db_for_write(self, model, **hints):
        state = _request.get()
        if state is not None:
            state.wrote = True
        return DEFAULT_DB_ALIAS

    def allow_relation(self, obj1, obj2, **hints):
        return True  # one database, two copies

    def allow_migrate(self, db, app_label, model_name=None, **hints):
        return db == DEFAULT_DB_ALIAS


class ReplicaReadsMiddleware:
    """Keeps each request's replica state (see the module docstring); sets the pin cookie after
    a request that wrote or was not a GET. Not used without the "replica" alias."""

    def __init__(self, get_response):
        if REPLICA not in settings.DATABASES:
            raise MiddlewareNotUsed
        self.get_response = get_response

    def __call__(self, request):
        state = _RequestReads(pinned=request.method not in SAFE_METHODS or PIN_COOKIE in request.COOKIES)
        token = _request.set(state)
        try:
            response = self.get_response(request)
        finally:
            _request.reset(token)
        # Browsers only: devices and API clients read what they wrote from the answer itself.
        if (state.wrote or request.method not in SAFE_METHODS) and not request.path.startswith(API_PREFIX):
            response.set_cookie(
                PIN_COOKIE,
                "1",
                max_age=settings.DATABASE_REPLICA_PIN_SECONDS,
                httponly=True,
                samesite="Lax",
                secure=request.is_secure(),
            )
        return response

    def process_view(self, request, view_func, view_args, view_kwargs):
        _request.get().opted_in = request.resolver_match.url_name in settings.DATABASE_REPLICA_PAGES

    def process_exception(self, request, exception):
        state = _request.get()
        if not isinstance(exception, DatabaseError) or not state.opted_in or state.replica_failed:
            return None
        try:
            replica_lag()
        except DatabaseError:
            pass
        else:
            return None  # the replica answers: the error is not its
        # The replica went away during the page: a GET page reads only, so run it on the primary.
        logger.warning("The replica failed during %s: reading from the primary (%s)", request.path, exception)
        _health.mark_unusable()
        connections[REPLICA].close()
        state.replica_failed = True
        match = request.resolver_match
        response = match.func(request, *match.args, **match.kwargs)  # what Django called
        return response.render() if hasattr(response, "render") else response
