"""The portal's address in the links it hands out to be used elsewhere (QR labels' links)."""

from django.conf import settings


def portal_origin(request=None) -> str:
    """The origin printed in label links: PORTAL_ORIGIN when set, else the address `request`
    reached the portal at (a host ALLOWED_HOSTS accepts), else "" (no request: say so, rather
    than print a link that leads nowhere)."""
    if settings.PORTAL_ORIGIN:
        return settings.PORTAL_ORIGIN.rstrip("/")
    if request is not None:
        return request.build_absolute_uri("/").rstrip("/")
    return ""
