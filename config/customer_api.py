"""The customer API under /api/v1/org/ (docs/customer-api.md): django-ninja, one router per app.

Every call carries an organization's API token (apitokens/); every error is the device API's
shape, `{"error": {"code", "message", ...}}`. Handlers map the refusals of the domain rules and
of the tenant checks to it, so routers only call the rules and answer.
"""

from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.http import Http404
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError, ValidationError

from apitokens.authentication import ApiTokenAuth
from devices.actions import DeviceActionError
from devices.commands import CommandError
from devices.configuration import ConfigurationError
from devices.org_api import router as devices_router
from portal.api_errors import InvalidFields
from portal.keyset import InvalidCursor
from portal.ratelimit import RateLimitExceeded
from spaces.org_api import router as spaces_router

api = NinjaAPI(
    title="Device portal customer API",
    version="1",
    urls_namespace="org-api",
    auth=ApiTokenAuth(),
    docs_url=None,
    openapi_url=None,
)
api.add_router("spaces", spaces_router)
api.add_router("devices", devices_router)
api.add_router("claims", "devices.claim_api.router")


def error(request, status, code, message, **extra):
    return api.create_response(request, {"error": {"code": code, "message": message, **extra}}, status=status)


def _location(loc):
    # pydantic's location starts with where the value came from ("body", "query", "path") and, for
    # a body, the parameter's name: neither is a field the client sent.
    parts = [str(part) for part in loc]
    if parts and parts[0] in ("body", "query", "path"):
        parts = parts[2:] if parts[0] == "body" else parts[1:]
    # A body that may be one thing or a list (claims) names the union's branch too: not a field.
    parts = [part for part in parts if "[" not in part]
    return ".".join(parts) or "body"


@api.exception_handler(ValidationError)
def invalid_request(request, exc):
    fields = {}
    for problem in exc.errors:
        fields.setdefault(_location(problem.get("loc", ())), problem.get("msg", "Invalid value."))
    return error(request, 400, "invalid_request", "The request is not valid.", fields=fields)


@api.exception_handler(InvalidFields)
def invalid_fields(request, exc):
    return error(request, 400, "invalid_request", "The request is not valid.", fields=exc.fields)


@api.exception_handler(RequestDataTooBig)
def too_big(request, exc):
    return error(request, 413, "too_large", "The request body is too large.")


# The domain rules' refusals, each with the rule's own message: a state the device is in now
# (released meanwhile, another organization's space) is a conflict; values the model refuses are
# the request's fault.
REFUSALS = {
    DeviceActionError: (409, "refused"),
    CommandError: (400, "invalid_command"),
    InvalidCursor: (400, "invalid_cursor"),
}


def _refusal_handler(status, code):
    def refused(request, exc):
        return error(request, status, code, exc.message)

    return refused


for refusal, (status, code) in REFUSALS.items():
    api.add_exception_handler(refusal, _refusal_handler(status, code))


@api.exception_handler(ConfigurationError)
def invalid_configuration(request, exc):
    fields = {key: " ".join(messages) for key, messages in exc.errors.items()}
    return error(request, 400, "invalid_configuration", exc.message, fields=fields)


@api.exception_handler(AuthenticationError)
def unauthorized(request, exc):
    response = error(request, 401, "unauthorized", "Authentication failed.")
    response["WWW-Authenticate"] = 'Bearer realm="organization"'
    return response


@api.exception_handler(RateLimitExceeded)
def rate_limited(request, exc):
    response = error(request, 429, "rate_limited", "Too many requests with this token; retry later.")
    response["Retry-After"] = str(exc.retry_after)
    return response


@api.exception_handler(Http404)
def not_found(request, exc):
    return error(request, 404, "not_found", "There is no such object in your organization.")


@api.exception_handler(PermissionDenied)
def forbidden(request, exc):
    return error(request, 403, "forbidden", "This token's role does not allow this.")


@api.exception_handler(HttpError)
def http_error(request, exc):
    return error(request, exc.status_code, "invalid_request" if exc.status_code == 400 else "error", str(exc))
