"""Organization API tokens: created, checked and revoked here only.

A token is `ptk_` and 43 URL-safe characters (256 bits from the CSPRNG). It is shown once; the
database keeps its HMAC-SHA256 under a key derived from SECRET_KEY, so a leaked table gives no
usable token, and a lookup by that hash compares nothing secret byte by byte.
"""

import hashlib
import hmac
import secrets
import uuid
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from accounts.audit import record_audit
from accounts.models import API_TOKEN_EMAIL_DOMAIN, AuditEntry
from portal.keys import derived_key

from .models import ApiToken

PREFIX = "ptk_"
# How stale "last used" may get: written at most once a minute per token, not on every request.
LAST_USED_RESOLUTION = timedelta(minutes=1)


def _token_hash(raw: str) -> str:
    key = derived_key(b"portal api token v1")
    return hmac.new(key, raw.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()


def create_token(organization, *, name, role, expires_at=None, actor):
    """Create a token of `organization` with `role`; returns (token, the token's text, shown once).

    Its own account is created with it (inactive, no password, no membership). Recorded in the audit log.
    """
    raw = PREFIX + secrets.token_urlsafe(32)
    code = uuid.uuid4()
    with transaction.atomic():
        # Inactive and without a password: no sign-in, session or password reset ever opens it.
        user = get_user_model().objects.create_user(
            email=f"{code}@{API_TOKEN_EMAIL_DOMAIN}", password=None, full_name=f"API token “{name}”", is_active=False
        )
        token = ApiToken.objects.create(
            code=code,
            organization=organization,
            user=user,
            name=name,
            role=role,
            prefix=raw[: len(PREFIX) + 4],
            token_hash=_token_hash(raw),
            created_by=actor,
            expires_at=expires_at,
        )
        record_audit(
            organization_id=organization.pk,
            actor=actor,
            action=AuditEntry.Action.API_TOKEN_CREATED,
            target=name,
            details={"role": role, "expires_at": expires_at.isoformat() if expires_at else None},
        )
    return token, raw


def revoke_token(token, *, actor):
    """Revoke `token` at once (its next request is refused). Recorded in the audit log; revoking a
    revoked token changes nothing."""
    with transaction.atomic():
        locked = ApiToken.objects.select_for_update().get(pk=token.pk)
        if locked.revoked_at is not None:
            return locked
        locked.revoked_at = timezone.now()
        locked.save(update_fields=["revoked_at"])
        record_audit(
            organization_id=locked.organization_id,
            actor=actor,
            action=AuditEntry.Action.API_TOKEN_REVOKED,
            target=locked.name,
        )
    return locked


def authenticate_token(raw: str, now=None) -> ApiToken | None:
    """The usable token whose text is `raw`, with its organization and account, or None."""
    if not raw.startswith(PREFIX) or len(raw) > 100:
        return None
    now = now or timezone.now()
    token = (
        ApiToken.objects.usable(now).select_related("organization", "user").filter(token_hash=_token_hash(raw)).first()
    )
    if token is None:
        return None
    if token.last_used_at is None or token.last_used_at < now - LAST_USED_RESOLUTION:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now
    return token
