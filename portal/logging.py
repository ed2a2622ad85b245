"""Log records that never keep a QR label's payload.

A label's link carries the unit's claim code in its path (/claim/label/<payload>/, vendors/labels.py).
Its view answers every payload with a redirect, which Django's request log does not record; the
development server logs every request line, and an exception would log the path too. This filter,
on the request and server loggers and on the console handler (config/settings/base.py LOGGING),
writes such paths as /claim/label/<payload>/. A proxy's or gunicorn's access log is outside the
portal's reach: docs/claiming.md says so.
"""

import logging
import re

_LABEL_PAYLOAD = re.compile(r"/claim/label/[^/\s\"'?#]+")


def redact_label_payloads(text):
    """`text` with the payload of every label link path replaced by <payload>."""
    return _LABEL_PAYLOAD.sub("/claim/label/<payload>", text)


class RedactLabelPayloads(logging.Filter):
    """Rewrites a record whose message holds a label link path; lets every record through."""

    def filter(self, record):
        message = record.getMessage()
        redacted = redact_label_payloads(message)
        if redacted != message:
            record.msg, record.args = redacted, ()
        return True
