"""The portal's address in the links it hands out to be used elsewhere (QR labels, e-mails)."""

from django.conf import settings


def portal_origin(request=None) -> str:
    """The origin of links meant to be opened elsewhere: PORTAL_ORIGIN when set, else the address
    `request` reached the portal at (a host ALLOWED_HOSTS accepts), else the first host
    ALLOWED_HOSTS names (what e-mails sent by background tasks link to), else "" (say so, rather
    than print a link that leads nowhere)."""
    if settings.PORTAL_ORIGIN:
        return settings.PORTAL_ORIGIN.rstrip("/")
    if request is not None:
        return request.build_absolute_uri("/").rstrip("/")
    host = next(iter(settings.ALLOWED_HOSTS), "")
    if not host or host.startswith((".", "*")):
        return ""
    return f"{'https' if settings.SESSION_COOKIE_SECURE else 'http'}://{host}"
