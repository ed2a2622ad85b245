"""Throttles for repeated failures (sign-ins, claims), counted in the shared cache.

The cache is Redis in production, so a limit holds across processes and hosts. Each counter
is a fixed window that starts at the first failure and blocks once it reaches its limit.
"""

import hashlib
import time
from datetime import UTC, datetime

from django.conf import settings
from django.core.cache import cache


class FailureThrottle:
    """Counts failures per key; `limit_setting` and `window_setting` name the settings
    (read at each call, so tests can override them) holding the limit and the window in seconds."""

    def __init__(self, prefix, *, limit_setting, window_setting):
        self.prefix = prefix
        self.limit_setting = limit_setting
        self.window_setting = window_setting

    def _keys(self, key):
        return f"{self.prefix}:{key}:count", f"{self.prefix}:{key}:start"

    def retry_at(self, key):
        """When `key` may try again, or None if it is not blocked."""
        count_key, start_key = self._keys(key)
        count = cache.get(count_key) or 0
        if count < getattr(settings, self.limit_setting):
            return None
        started = cache.get(start_key) or time.time()
        return datetime.fromtimestamp(started + getattr(settings, self.window_setting), tz=UTC)

    def record_failure(self, key):
        count_key, start_key = self._keys(key)
        seconds = getattr(settings, self.window_setting)
        cache.add(start_key, time.time(), timeout=seconds)
        cache.add(count_key, 0, timeout=seconds)
        try:
            cache.incr(count_key)
        except ValueError:  # expired between add and incr
            cache.set(count_key, 1, timeout=seconds)

    def reset(self, key):
        cache.delete_many(self._keys(key))


SIGN_IN_FAILURES_PER_ACCOUNT = FailureThrottle(
    "sign-in-failures:account",
    limit_setting="SIGN_IN_FAILURE_LIMIT_PER_ACCOUNT",
    window_setting="SIGN_IN_FAILURE_WINDOW",
)
SIGN_IN_FAILURES_PER_ADDRESS = FailureThrottle(
    "sign-in-failures:address",
    limit_setting="SIGN_IN_FAILURE_LIMIT_PER_ADDRESS",
    window_setting="SIGN_IN_FAILURE_WINDOW",
)


def _account_key(email):
    # Whatever was typed, existing account or not, so the throttle does not reveal which accounts exist;
    # hashed to keep arbitrary input out of cache key names.
    return hashlib.sha256(email.strip().lower().encode()).hexdigest()[:32]


def client_address(request):
    """The address a request came from: REMOTE_ADDR, or behind TRUSTED_PROXY_COUNT = n proxies the
    n-th address from the right of X-Forwarded-For, the one the outermost trusted proxy saw
    (entries further left are whatever the client sent, so they are never trusted)."""
    proxies = settings.TRUSTED_PROXY_COUNT
    if proxies:
        forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
        forwarded = [part for part in forwarded if part]
        if len(forwarded) >= proxies:
            return forwarded[-proxies]
    return request.META.get("REMOTE_ADDR") or "unknown"


class SignInThrottled(Exception):
    def __init__(self, message, *, retry_at):
        super().__init__(message)
        self.message = message
        self.retry_at = retry_at


def check_sign_in_allowed(email, address):
    """Raise SignInThrottled if the account typed or the client's address has failed too often.

    Counted per account (someone guessing one person's password from many addresses) and per
    address (one address trying many accounts).
    """
    for throttle, key, subject in (
        (SIGN_IN_FAILURES_PER_ACCOUNT, _account_key(email), "this account"),
        (SIGN_IN_FAILURES_PER_ADDRESS, address, "your network address"),
    ):
        retry_at = throttle.retry_at(key)
        if retry_at is not None:
            raise SignInThrottled(
                f"Too many failed sign-ins for {subject}. For your security, signing in is paused; "
                f"try again after {retry_at:%H:%M} (UTC), or reset your password.",
                retry_at=retry_at,
            )


def record_sign_in_failure(email, address):
    """Count one failed sign-in against the account typed and the client's address."""
    SIGN_IN_FAILURES_PER_ACCOUNT.record_failure(_account_key(email))
    SIGN_IN_FAILURES_PER_ADDRESS.record_failure(address)


def record_sign_in_success(email):
    """A correct password clears the account's count (not the address's: one good account must not
    let an address go on guessing others)."""
    SIGN_IN_FAILURES_PER_ACCOUNT.reset(_account_key(email))
