"""The error body of the customer API, `{"error": {"code", "message", "fields"?}}` (the device
API's shape), as a schema its routers declare for the statuses each call can answer."""

from ninja import Schema


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


def error_responses(*statuses):
    """{status: ErrorOut} for `statuses` and those every call can answer (a bad token, the rate)."""
    return dict.fromkeys({401, 429, *statuses}, ErrorOut)
