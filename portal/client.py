"""Who sent a request: the one client-address function that every rate limit and log uses."""

import ipaddress

from django.conf import settings


def client_address(request) -> str:
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


def client_ip(request) -> str | None:
    """client_address as an IP address to store (GenericIPAddressField), or None when it is none
    (no REMOTE_ADDR, or a proxy forwarded something else)."""
    try:
        return str(ipaddress.ip_address(client_address(request)))
    except ValueError:
        return None
