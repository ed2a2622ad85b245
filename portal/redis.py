"""The one raw Redis client of each process, for what the cache API cannot do in one round trip
(rate-limit counters, the activation doorbell and announcements), and its key names."""

import functools

import redis
from django.conf import settings
from django.core.cache import cache


@functools.cache
def redis_client() -> redis.Redis | None:
    """The process's client (a connection pool) on REDIS_URL, or None without Redis (the embedded default).

    With the same timeouts as the cache and the broker: a Redis that accepts connections and never
    answers raises redis.TimeoutError after REDIS_SOCKET_TIMEOUT seconds instead of hanging the caller.
    """
    if not settings.REDIS_URL:
        return None
    return redis.Redis.from_url(
        settings.REDIS_URL,
        socket_connect_timeout=settings.REDIS_CONNECT_TIMEOUT,
        socket_timeout=settings.REDIS_SOCKET_TIMEOUT,
    )


def redis_key(name: str) -> str:
    """`name` under the cache's KEY_PREFIX and version, as the cache would store it, so that two
    deployments (or two test suites) sharing one Redis database never read each other's keys."""
    return cache.make_key(name)
