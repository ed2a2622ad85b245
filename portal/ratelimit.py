"""Rate limits for sign-in, claims and the device API: counters in the shared cache.

Each attempt is counted before it is checked (one atomic increment), and refused once its count
passes the limit; an attempt that turns out fine may take its count back. Parallel attempts
therefore cannot all slip under a limit, as they could when the count came after the check.

Counters live in Redis (one pipelined round trip for every limit an attempt counts against),
under the cache's key prefix, where a window starts with the first count of a subject and lasts
`window` seconds; without Redis (the embedded default) in the database cache, which every process
shares too, in windows that start on the clock.
"""

import hashlib
import logging
import time
from dataclasses import dataclass
from datetime import timedelta

import redis
from django.conf import settings
from django.core.cache import cache
from django.db import DatabaseError
from django.utils import timezone

from .redis import redis_client, redis_key

logger = logging.getLogger(__name__)

# Decrement a counter only while it exists: a DECR after the window expired would leave a
# negative counter without an expiry, one free attempt forever.
_TAKE_BACK = "if redis.call('exists', KEYS[1]) == 1 then return redis.call('decrby', KEYS[1], ARGV[1]) end return 0"


@dataclass(frozen=True)
class RateLimit:
    """At most `limit` attempts per `window` seconds for each subject (an account, an address, a unit).

    `limit` and `window` are numbers or the names of settings holding them, read at each call.
    `fail_open` says what an attempt gets while the counters cannot be reached: refused (False:
    sign-ins, claims and activations carrying a claim code, where an uncounted attempt is the
    guess the limit exists to stop) or allowed (True: other device activations, which a lost
    minute of limits costs less than refusing every device).
    """

    scope: str
    limit: int | str
    window: int | str = 60
    fail_open: bool = False

    def allowed(self) -> int:
        return self.limit if isinstance(self.limit, int) else getattr(settings, self.limit)

    def seconds(self) -> int:
        return self.window if isinstance(self.window, int) else getattr(settings, self.window)

    def name(self, subject: str) -> str:
        # Hashed: subjects are what clients sent (addresses, e-mails typed, identifiers).
        digest = hashlib.sha256(str(subject).encode("utf-8", "surrogatepass")).hexdigest()[:32]
        return f"ratelimit:{self.scope}:{digest}"


class RateLimitExceeded(Exception):
    """An attempt passed `limit` (the first of those it passed); it may retry after `retry_after`
    seconds, at `retry_at`."""

    def __init__(self, limit: RateLimit, retry_after: int):
        super().__init__(f"{limit.scope}: retry after {retry_after} s")
        self.limit = limit
        self.retry_after = retry_after
        self.retry_at = timezone.now() + timedelta(seconds=retry_after)


class RateLimitUnavailable(Exception):
    """The counters cannot be reached and a limit the attempt counts against refuses uncounted attempts."""


def count_attempt(*attempts: tuple[RateLimit, str], times: int = 1) -> None:
    """Count one attempt (or `times` attempts at once: a file's rows) against each (limit, subject),
    then raise RateLimitExceeded if any count passed its limit. The counts stay: a refused attempt
    is an attempt too."""
    try:
        counted = _increment(attempts, times)
    except _UNREACHABLE:
        if all(limit.fail_open for limit, _ in attempts):
            logger.warning("Rate limits are not counted: the cache is unreachable", exc_info=True)
            return
        raise RateLimitUnavailable from None
    exceeded = [
        (limit, ends_in)
        for (limit, _), (count, ends_in) in zip(attempts, counted, strict=True)
        if count > limit.allowed()
    ]
    if exceeded:
        raise RateLimitExceeded(exceeded[0][0], max(1, max(ends_in for _, ends_in in exceeded)))


def take_back(limit: RateLimit, subject: str, times: int = 1) -> None:
    """Uncount one attempt (or `times`) of `subject` that turned out fine (a correct password, a
    claim that went through)."""
    try:
        client = redis_client()
        if client is not None:
            client.eval(_TAKE_BACK, 1, redis_key(limit.name(subject)), times)
        else:
            key, _ = _cache_window(limit, subject)
            cache.decr(key, times)
    except ValueError:  # the window ended meanwhile: nothing to take back
        pass
    except _UNREACHABLE:
        logger.warning("Could not take back a rate-limit count", exc_info=True)


def reset(limit: RateLimit, subject: str) -> None:
    """Forget the counts of `subject` under `limit`."""
    try:
        client = redis_client()
        if client is not None:
            client.delete(redis_key(limit.name(subject)))
        else:
            cache.delete(_cache_window(limit, subject)[0])
    except _UNREACHABLE:
        logger.warning("Could not reset a rate-limit count", exc_info=True)


# Redis, socket and (for the database cache) database errors: the counters cannot be reached.
_UNREACHABLE = (redis.RedisError, OSError, DatabaseError)


def _increment(attempts, times) -> list[tuple[int, int]]:
    """Increment each counter by `times`, starting its window if it is new; (count, seconds left) for each.

    On Redis a window starts with its first count (INCRBY, then EXPIRE NX): one pipelined round trip.
    """
    client = redis_client()
    if client is None:
        return [_increment_in_cache(limit, subject, times) for limit, subject in attempts]
    pipe = client.pipeline(transaction=False)
    for limit, subject in attempts:
        key = redis_key(limit.name(subject))
        pipe.incrby(key, times).expire(key, limit.seconds(), nx=True).ttl(key)
    results = pipe.execute()
    windows = [limit.seconds() for limit, _ in attempts]
    return [
        (count, ttl if ttl > 0 else window)
        for count, ttl, window in zip(results[::3], results[2::3], windows, strict=True)
    ]


def _cache_window(limit, subject):
    """The cache key of the current fixed window of `subject` under `limit`, and the seconds it has left.

    Without Redis the cache API cannot tell a counter's expiry, so windows start on the clock
    (every `window` seconds) and the window is part of the key.
    """
    window, now = limit.seconds(), time.time()
    start = int(now // window) * window
    return f"{limit.name(subject)}:{start}", start + window - now


def _increment_in_cache(limit, subject, times):
    key, left = _cache_window(limit, subject)
    timeout = int(left) + 1
    if cache.add(key, times, timeout=timeout):
        return times, max(1, int(left + 0.999))
    try:
        count = cache.incr(key, times)
    except ValueError:  # expired between add and incr
        cache.set(key, times, timeout=timeout)
        return times, max(1, int(left + 0.999))
    # incr writes the counter back with the cache's default timeout: give it the window's again.
    cache.touch(key, timeout)
    return count, max(1, int(left + 0.999))
