"""Rate limits for sign-in, claims and the device API: counters in the shared cache.

Each attempt is counted before it is checked (one atomic increment), and refused once its count
passes the limit; an attempt that turns out fine may take its count back. Parallel attempts
therefore cannot all slip under a limit, as they could when the count came after the check.

A window starts with the first count of a subject and lasts `window` seconds. Counters live in
Redis (one pipelined round trip for every limit an attempt counts against), under the cache's
key prefix; without Redis (the embedded default) in the database cache, which every process
shares too.
"""

import hashlib
import logging
import time
from dataclasses import dataclass
from datetime import timedelta

import redis
from django.conf import settings
from django.core.cache import cache
from django.utils import timezone

from .redis import redis_client, redis_key

logger = logging.getLogger(__name__)

# Decrement a counter only while it exists: a DECR after the window expired would leave a
# negative counter without an expiry, one free attempt forever.
_TAKE_BACK = "if redis.call('exists', KEYS[1]) == 1 then return redis.call('decr', KEYS[1]) end return 0"


@dataclass(frozen=True)
class RateLimit:
    """At most `limit` attempts per `window` seconds for each subject (an account, an address, a unit).

    `limit` and `window` are numbers or the names of settings holding them, read at each call.
    `fail_open` says what an attempt gets while the counters cannot be reached: refused (False:
    sign-ins and claims, where an uncounted attempt is the guess the limit exists to stop) or
    allowed (True: device activations, which a lost minute of limits costs less than refusing
    every device).
    """

    scope: str
    limit: int | str
    window: int | str = 60
    fail_open: bool = False

    def allowed(self) -> int:
        return self.limit if isinstance(self.limit, int) else getattr(settings, self.limit)

    def seconds(self) -> int:
        return self.window if isinstance(self.window, int) else getattr(settings, self.window)

    def key(self, subject: str) -> str:
        # Hashed: subjects are what clients sent (addresses, e-mails typed, identifiers).
        digest = hashlib.sha256(str(subject).encode("utf-8", "surrogatepass")).hexdigest()[:32]
        return redis_key(f"ratelimit:{self.scope}:{digest}")


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


def count_attempt(*attempts: tuple[RateLimit, str]) -> None:
    """Count one attempt against each (limit, subject), then raise RateLimitExceeded if any count
    passed its limit. The counts stay: a refused attempt is an attempt too."""
    try:
        counted = _increment([(limit.key(subject), limit.seconds()) for limit, subject in attempts])
    except (redis.RedisError, OSError):
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


def take_back(limit: RateLimit, subject: str) -> None:
    """Uncount one attempt of `subject` that turned out fine (a correct password, a claim that went through)."""
    key = limit.key(subject)
    try:
        client = redis_client()
        if client is not None:
            client.eval(_TAKE_BACK, 1, key)
            return
        cache.decr(key)
    except ValueError:  # the window ended meanwhile: nothing to take back
        pass
    except (redis.RedisError, OSError):
        logger.warning("Could not take back a rate-limit count", exc_info=True)


def reset(limit: RateLimit, subject: str) -> None:
    """Forget every count of `subject` under `limit`."""
    key = limit.key(subject)
    try:
        client = redis_client()
        if client is not None:
            client.delete(key)
        else:
            cache.delete_many([key, f"{key}:ends"])
    except (redis.RedisError, OSError):
        logger.warning("Could not reset a rate-limit count", exc_info=True)


def _increment(keys_and_windows) -> list[tuple[int, int]]:
    """Increment each counter, starting its window if it is new; (count, seconds left) for each."""
    client = redis_client()
    if client is None:
        return [_increment_in_cache(key, window) for key, window in keys_and_windows]
    pipe = client.pipeline(transaction=False)
    for key, window in keys_and_windows:
        pipe.incr(key).expire(key, window, nx=True).ttl(key)
    results = pipe.execute()
    return [(count, ttl if ttl > 0 else window) for count, ttl in zip(results[::3], results[2::3], strict=True)]


def _increment_in_cache(key, window):
    now = time.time()
    cache.add(f"{key}:ends", now + window, timeout=window)
    ends = cache.get(f"{key}:ends") or now + window
    if cache.add(key, 1, timeout=window):
        return 1, window
    try:
        return cache.incr(key), int(ends - now + 0.999)
    except ValueError:  # expired between add and incr: a new window
        cache.set(key, 1, timeout=window)
        return 1, window
