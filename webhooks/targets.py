"""Where a webhook may be sent: the guard against server-side request forgery.

A URL is checked when it is saved (scheme, host, an address literal) and again at each send, on
the addresses its host resolves to then: every one must be public, unless
WEBHOOK_ALLOW_PRIVATE_TARGETS is on. The sender then connects to the address checked here (not a
second lookup, which a DNS answer changed meanwhile would point elsewhere), keeping the URL's host
for the Host header, SNI and the certificate check.
"""

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings

from portal.errors import UserFacingError

# Cloud metadata services, named even where another rule covers them: they hand out credentials.
METADATA_ADDRESSES = {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}
CGNAT = ipaddress.ip_network("100.64.0.0/10")
NAT64 = ipaddress.ip_network("64:ff9b::/96")


class RefusedTarget(UserFacingError):
    """A webhook URL, or the address it resolves to, that the portal does not send to."""


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str  # as in the URL, for Host, SNI and the certificate
    port: int
    address: str  # the checked address to connect to
    path: str  # path and query

    @property
    def host_header(self):
        default = 443 if self.scheme == "https" else 80
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == default else f"{host}:{self.port}"


def refusal_of_address(address) -> str | None:
    """Why `address` (an ipaddress object) is no place to send a webhook, or None if it is public."""
    if settings.WEBHOOK_ALLOW_PRIVATE_TARGETS:
        return None
    if address.version == 6 and address.ipv4_mapped is not None:
        return "an IPv4-mapped IPv6 address"
    if address.version == 6 and address in NAT64:
        return refusal_of_address(ipaddress.ip_address(int(address) & 0xFFFFFFFF))
    if address in METADATA_ADDRESSES:
        return "a cloud metadata address"
    for test, what in (
        (address.is_loopback, "a loopback address"),
        (address.is_link_local, "a link-local address"),
        (address.is_multicast, "a multicast address"),
        (address.is_unspecified, "an unspecified address"),
        (address.version == 4 and address in CGNAT, "a carrier-grade NAT address"),
        (address.is_reserved, "a reserved address"),
        (address.is_private, "a private address"),
        (not address.is_global, "not a public address"),
    ):
        if test:
            return what
    return None


def _parts(url):
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise RefusedTarget("This is not a valid URL.") from None
    allowed = ("https", "http") if settings.WEBHOOK_ALLOW_HTTP else ("https",)
    if parts.scheme not in allowed:
        raise RefusedTarget(
            "Webhook URLs must start with https://." if allowed == ("https",) else "Use an http(s) URL."
        )
    if not parts.hostname:
        raise RefusedTarget("This URL names no host.")
    if parts.username or parts.password:
        raise RefusedTarget("Put no user name or password in the URL: the signature proves the sender.")
    return parts, port or (443 if parts.scheme == "https" else 80)


def check_url(url):
    """Refuse (RefusedTarget) a URL that can never be a webhook target: not https (http too where
    allowed), no host, credentials in it, or an address literal that is not public. What its host
    will resolve to is checked at each send (resolve_target)."""
    parts, _ = _parts(url)
    try:
        literal = ipaddress.ip_address(parts.hostname)
    except ValueError:
        literal = None
    if literal is not None and (why := refusal_of_address(literal)):
        raise RefusedTarget(f"The portal does not send webhooks to {literal}: it is {why}.")
    if parts.hostname.rstrip(".").lower() == "localhost" and not settings.WEBHOOK_ALLOW_PRIVATE_TARGETS:
        raise RefusedTarget("The portal does not send webhooks to localhost.")
    return url


def resolve_target(url) -> Target:
    """The address to send `url`'s webhook to, looked up now; RefusedTarget if the URL or any of
    the addresses its host resolves to is refused (one bad answer is enough: which address a
    client uses is not the sender's to choose by chance)."""
    parts, port = _parts(url)
    try:
        answers = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise RefusedTarget(f"The host {parts.hostname} could not be resolved.") from None
    addresses = [ipaddress.ip_address(answer[4][0].split("%")[0]) for answer in answers]
    for address in addresses:
        if why := refusal_of_address(address):
            # The address itself is not named: the message reaches the customer's page, and the
            # portal must not answer what names only its own network knows resolve to.
            raise RefusedTarget(f"{parts.hostname} resolves to {why}: not sent.")
    path = parts.path or "/"
    return Target(
        scheme=parts.scheme,
        host=parts.hostname,
        port=port,
        address=str(addresses[0]),
        path=f"{path}?{parts.query}" if parts.query else path,
    )
