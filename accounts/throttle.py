"""Sign-in attempts (passwords, then authentication codes), limited per account and per client
address (portal/ratelimit.py).

Every attempt is counted before its password is checked, so parallel guesses at one account are
refused once the count passes the limit, not checked all at once. A correct password takes its
attempt back: it clears the account's count and uncounts itself from the address, so colleagues
signing in from one office address are not paused by their own sign-ins.
"""

import hashlib

from portal.errors import UserFacingError
from portal.ratelimit import RateLimit, RateLimitExceeded, RateLimitUnavailable, count_attempt, reset, take_back

SIGN_IN_PER_ACCOUNT = RateLimit(
    "sign-in:account", limit="SIGN_IN_FAILURE_LIMIT_PER_ACCOUNT", window="SIGN_IN_FAILURE_WINDOW"
)
SIGN_IN_PER_ADDRESS = RateLimit(
    "sign-in:address", limit="SIGN_IN_FAILURE_LIMIT_PER_ADDRESS", window="SIGN_IN_FAILURE_WINDOW"
)

CODE_PER_ACCOUNT = RateLimit(
    "two-factor:account", limit="TWO_FACTOR_FAILURE_LIMIT_PER_ACCOUNT", window="SIGN_IN_FAILURE_WINDOW"
)
CODE_PER_ADDRESS = RateLimit(
    "two-factor:address", limit="TWO_FACTOR_FAILURE_LIMIT_PER_ADDRESS", window="SIGN_IN_FAILURE_WINDOW"
)


class SignInThrottled(UserFacingError):
    """Signing in is paused for this account or address (or, with the counters unreachable, for everyone)."""

    def __init__(self, message, *, retry_at=None):
        super().__init__(message)
        self.retry_at = retry_at


def _account_key(email):
    # Whatever was typed, existing account or not, so the limit does not reveal which accounts exist.
    return hashlib.sha256(email.strip().lower().encode("utf-8", "surrogatepass")).hexdigest()[:32]


def count_sign_in_attempt(email, address):
    """Count an attempt to sign in as `email` from `address`, before its password is checked.

    Raises SignInThrottled when the account typed (someone guessing one person's password from many
    addresses) or the address (one address trying many accounts) is over its limit, and when the
    counters cannot be reached: a sign-in that cannot be counted is refused, not let through.
    """
    _count(
        SIGN_IN_PER_ACCOUNT, _account_key(email), SIGN_IN_PER_ADDRESS, address, "sign-ins", ", or reset your password"
    )


def record_sign_in_success(email, address):
    """A correct password: the account's count is cleared and this attempt uncounted from the address
    (only this one: one good account must not let an address go on guessing others)."""
    reset(SIGN_IN_PER_ACCOUNT, _account_key(email))
    take_back(SIGN_IN_PER_ADDRESS, address)


def count_code_attempt(user, address):
    """Count an attempt at an authentication or recovery code of `user` from `address`, before the
    code is checked: the same rules as passwords (SignInThrottled), under limits of their own, so
    that someone who knows the password cannot try all million codes."""
    _count(CODE_PER_ACCOUNT, str(user.pk), CODE_PER_ADDRESS, address, "codes", "")


def record_code_success(user, address):
    """A correct code: as record_sign_in_success."""
    reset(CODE_PER_ACCOUNT, str(user.pk))
    take_back(CODE_PER_ADDRESS, address)


def _count(account_limit, account, address_limit, address, attempts, alternative):
    try:
        count_attempt((account_limit, account), (address_limit, address))
    except RateLimitExceeded as exceeded:
        subject = "this account" if exceeded.limit is account_limit else "your network address"
        retry_at = exceeded.retry_at
        raise SignInThrottled(
            f"Too many failed {attempts} for {subject}. For your security, signing in is paused; "
            f"try again after {retry_at:%H:%M} (UTC){alternative}.",
            retry_at=retry_at,
        ) from None
    except RateLimitUnavailable:
        raise SignInThrottled(
            "Signing in is unavailable for a moment because the portal cannot check sign-in attempts. "
            "Please try again in a minute."
        ) from None
