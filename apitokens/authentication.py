"""Bearer authentication of the customer API, with each token's rate limit."""

from ninja.security import HttpBearer

from portal.ratelimit import RateLimit, count_attempt

from .tokens import authenticate_token

# Requests per minute and token. Counted after the token is known (a stranger's guesses are
# refused by the hash lookup, and cost one indexed read); while Redis is unreachable requests are
# let through: the rules that guard guesses (claims) keep their own limits, which refuse.
REQUESTS_PER_TOKEN = RateLimit("org-api:token", limit="ORG_API_RATE_PER_TOKEN", fail_open=True)


class ApiTokenAuth(HttpBearer):
    """`Authorization: Bearer ptk_...`; request.auth becomes the ApiToken. Raises RateLimitExceeded
    (answered 429 by the API) once the token passed its rate."""

    def authenticate(self, request, token):
        api_token = authenticate_token(token)
        if api_token is not None:
            count_attempt((REQUESTS_PER_TOKEN, str(api_token.code)))
        return api_token
