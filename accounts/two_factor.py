"""Second factors: an authenticator app (TOTP), ten one-time recovery codes, passkeys (WebAuthn),
and an organization's requirement of them. django-otp keeps the devices; the rules are here.

A person "has a second factor" with a confirmed authenticator app or a passkey (recovery codes
only stand in for the app). A session "is verified" once a factor was used in it (django-otp's
`user.is_verified()`); what requires two-factor authentication requires a verified session.
"""

import hmac
import secrets

from django.db import transaction
from django.db.models import Exists, OuterRef
from django_otp import login as otp_login
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice
from django_otp_webauthn.models import WebAuthnCredential

from portal.client import client_address
from portal.errors import UserFacingError
from portal.keys import derived_key
from portal.sessions import end_sessions

from .audit import record_audit
from .models import AuditEntry, Organization, Role
from .sessions import end_other_sessions
from .throttle import count_code_attempt, record_code_success

RECOVERY_CODE_COUNT = 10
# Ten characters of an alphabet without look-alikes (0/O, 1/l/I): about 50 bits each.
_RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
_RECOVERY_LENGTH = 10
AUTHENTICATOR_APP = "Authenticator app"


class TwoFactorError(UserFacingError):
    """A second-factor rule refused the action (a wrong code, a requirement not met)."""


class TwoFactorRequired(Exception):
    """The request needs a verified session: raised by the organization's pages (accounts/access.py)
    and the admin; accounts/security_middleware.py sends the person to set up or use a factor."""

    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason


def has_second_factor(user):
    """Whether `user` has a confirmed authenticator app or passkey."""
    return (
        TOTPDevice.objects.filter(user=user, confirmed=True).exists()
        or WebAuthnCredential.objects.filter(user=user, confirmed=True).exists()
    )


def second_factor_exists(user_ref="user"):
    """An Exists() expression for querysets: whether the row's `user_ref` has a second factor."""
    return Exists(TOTPDevice.objects.filter(user=OuterRef(user_ref), confirmed=True)) | Exists(
        WebAuthnCredential.objects.filter(user=OuterRef(user_ref), confirmed=True)
    )


def session_is_verified(user):
    """Whether a factor was used in the session `user` came with (False for users without a session)."""
    is_verified = getattr(user, "is_verified", None)
    return bool(is_verified and is_verified())


def check_organization_requirement(organization, user):
    """Raise TwoFactorRequired if `organization` requires two-factor authentication and `user`'s
    session is not verified. Every organization page of a person passes here (accounts/access.py);
    API tokens, which are not people, do not."""
    if organization.two_factor_required and not session_is_verified(user):
        raise TwoFactorRequired(f"{organization.name} requires two-factor authentication.")


def pending_authenticator(user):
    """The authenticator app `user` is setting up: unconfirmed until one code proves it works.
    The same one on every visit, so that a scanned QR code stays valid until confirmed."""
    device = TOTPDevice.objects.filter(user=user, confirmed=False).order_by("pk").first()
    return device or TOTPDevice.objects.create(user=user, name=AUTHENTICATOR_APP, confirmed=False)


def confirm_authenticator(request, code):
    """Confirm the signed-in person's pending authenticator app with one `code` from it (counted
    as sign-in codes are), replacing any earlier app. Returns the new recovery codes (shown once);
    the session counts as verified."""
    user = request.user
    with transaction.atomic():
        device = TOTPDevice.objects.select_for_update().filter(user=user, confirmed=False).order_by("pk").first()
        if device is None:
            raise TwoFactorError("Start the setup again: this code belongs to no pending authenticator app.")
        _check_counted(request, user, lambda: device.verify_token(_digits(code)))
        TOTPDevice.objects.filter(user=user, confirmed=True).delete()
        device.confirmed = True
        device.save(update_fields=["confirmed"])
        codes = regenerate_recovery_codes(user)
    otp_login(request, device)
    return codes


def regenerate_recovery_codes(user):
    """Replace `user`'s recovery codes with ten new ones, returned as text (stored only as keyed
    hashes: shown once). Each signs in once in place of an authentication code."""
    codes = [
        "".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(_RECOVERY_LENGTH)) for _ in range(RECOVERY_CODE_COUNT)
    ]
    with transaction.atomic():
        device, _ = StaticDevice.objects.get_or_create(user=user, defaults={"name": "Recovery codes"})
        device.token_set.all().delete()
        StaticToken.objects.bulk_create(StaticToken(device=device, token=_recovery_hash(code)) for code in codes)
    return [f"{code[:5]}-{code[5:]}" for code in codes]


def recovery_codes_left(user):
    return StaticToken.objects.filter(device__user=user).count()


def verify_code(request, user, code):
    """Check an authentication code or a recovery code of `user`, counted before it is checked
    (accounts/throttle.py; SignInThrottled past the limit). A recovery code works once, also when
    two requests bring it at once. Returns the device that matched, for django_otp.login;
    TwoFactorError for a wrong code."""
    return _check_counted(request, user, lambda: _match(user, code))


def turn_off_two_factor(request, code):
    """Remove the signed-in person's authenticator app and recovery codes, after a current code;
    their other sessions end (someone who took one over must not keep it)."""
    user = request.user
    verify_code(request, user, code)
    with transaction.atomic():
        TOTPDevice.objects.filter(user=user).delete()
        StaticDevice.objects.filter(user=user).delete()
    end_other_sessions(request)


def reset_two_factor(user):
    """Remove every second factor of `user` (authenticator app, recovery codes, passkeys) and end
    all their sessions: for staff helping a person who lost their phone and their codes."""
    with transaction.atomic():
        TOTPDevice.objects.filter(user=user).delete()
        StaticDevice.objects.filter(user=user).delete()
        WebAuthnCredential.objects.filter(user=user).delete()
    end_sessions(user.sessions.values_list("session_key", flat=True))


def remove_passkey(request, passkey_id):
    """Remove one of the signed-in person's passkeys; their other sessions end, as when the
    authenticator app is turned off. False if it was not theirs or is gone."""
    deleted, _ = WebAuthnCredential.objects.filter(user=request.user, pk=passkey_id).delete()
    if deleted:
        end_other_sessions(request)
    return bool(deleted)


def rename_passkey(user, passkey_id, name):
    """Give one of `user`'s passkeys a name of their choosing. False if it was not theirs."""
    return bool(WebAuthnCredential.objects.filter(user=user, pk=passkey_id).update(name=name))


def set_two_factor_requirement(organization, *, required, actor):
    """Require (or stop requiring) two-factor authentication of `organization`'s members; owners
    only, checked on the locked row, recorded in the audit log. Members without a second factor,
    the owner too, are taken to set one up at their next request. False when it already was so."""
    with transaction.atomic():
        organization = Organization.objects.select_for_update().get(pk=organization.pk)
        if not organization.memberships.filter(user=actor, role=Role.OWNER).exists():
            raise TwoFactorError("Only owners change whether two-factor authentication is required.")
        if organization.two_factor_required == required:
            return False
        organization.two_factor_required = required
        organization.save(update_fields=["two_factor_required"])
        action = AuditEntry.Action.TWO_FACTOR_REQUIRED if required else AuditEntry.Action.TWO_FACTOR_NOT_REQUIRED
        record_audit(organization_id=organization.pk, actor=actor, action=action, target=organization.name)
    return True


def _check_counted(request, user, check):
    address = client_address(request)
    count_code_attempt(user, address)
    device = check()
    if not device:
        raise TwoFactorError("That code is not right. Enter the 6 digits your authenticator app shows now.")
    record_code_success(user, address)
    return device


def _digits(code):
    return "".join(code.split())


def _recovery_hash(code):
    normalized = "".join(character for character in code.lower() if character.isalnum())
    digest = hmac.new(derived_key(b"recovery codes"), normalized.encode(), "sha256").hexdigest()
    # StaticToken.token holds 16 characters: 64 bits of the HMAC, far beyond what the throttle lets anyone try.
    return digest[:16]


def _match(user, code):
    """The device `code` belongs to: the authenticator app (locked, so that one code is accepted
    once: django-otp remembers the last time step used) or a recovery code (deleted as it is used)."""
    digits = _digits(code)
    if digits.isascii() and digits.isdigit() and len(digits) == 6:
        with transaction.atomic():
            for device in TOTPDevice.objects.select_for_update().filter(user=user, confirmed=True):
                if device.verify_token(digits):
                    return device
        return None
    token = StaticToken.objects.filter(device__user=user, token=_recovery_hash(code)).select_related("device").first()
    if token is None:
        return None
    # Only the request whose delete removed the row used the code.
    deleted, _ = StaticToken.objects.filter(pk=token.pk).delete()
    return token.device if deleted else None
