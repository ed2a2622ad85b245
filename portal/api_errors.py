"""The error body of the customer API, `{"error": {"code", "message", "fields"?}}` (the device
API's shape), as a schema its routers declare for the statuses each call can answer."""

from typing import Annotated

from ninja import Schema
from pydantic import AfterValidator


class InvalidFields(Exception):
    """A request whose fields a form refused: answered 400 invalid_request with `fields`."""

    def __init__(self, fields):
        super().__init__("The request is not valid.")
        self.fields = fields

    @classmethod
    def of(cls, form):
        return cls({field: " ".join(messages) for field, messages in form.errors.items()})


class ErrorDetail(Schema):
    code: str
    message: str
    # For invalid_request: the fields at fault, each with its message.
    fields: dict[str, str] | None = None


class ErrorOut(Schema):
    error: ErrorDetail


def refuse_unknown_parameters(request, known=()):
    """400 invalid_request naming each query parameter the call does not take: a misspelt filter
    must not quietly widen a list (or a script's page loop) to every device."""
    unknown = sorted(set(request.GET) - set(known))
    if unknown:
        raise InvalidFields(dict.fromkeys(unknown, "The call takes no such parameter."))


def error_responses(*statuses):
    """{status: ErrorOut} for `statuses` and those every call can answer (a bad token, the rate)."""
    return dict.fromkeys({401, 429, *statuses}, ErrorOut)


def _storable(value: str) -> str:
    # PostgreSQL stores no NUL character, and a lone surrogate is no UTF-8: refused as the field's
    # error (400) before any query could fail on it.
    if "\x00" in value:
        raise ValueError("must not contain a NUL character")
    try:
        value.encode()
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode text") from None
    return value


# A string field of a request body that the database can store.
StorableText = Annotated[str, AfterValidator(_storable)]
