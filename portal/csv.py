"""CSV files the portal writes for people to open in a spreadsheet: every cell of every export goes
through `neutralize_formula`, and `csv_lines` streams them a line at a time; and the files people
upload (serial lists, files of units to claim) read as text by `text_lines`."""

import csv
import io

# A cell starting with one of these is read as a formula by Excel, LibreOffice and Sheets (OWASP
# "CSV injection"); a leading tab or carriage return can hide such a start.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralize_formula(value):
    """`value` as text a spreadsheet shows as is: a leading apostrophe if it could start a formula."""
    text = "" if value is None else str(value)
    return f"'{text}" if text.startswith(FORMULA_STARTS) else text


class _Echo:
    """A file-like object whose write returns the line, for csv.writer in a streamed response."""

    def write(self, value):
        return value


def csv_lines(rows):
    """Each row of the iterable `rows` as one CSV line, every cell neutralized: the body of a
    StreamingHttpResponse, so that an export of millions of rows never sits in memory."""
    writer = csv.writer(_Echo())
    for row in rows:
        yield writer.writerow([neutralize_formula(cell) for cell in row])


def text_lines(stream, refusal):
    """The binary `stream` as lines of text: UTF-8, a leading BOM (as Excel writes it) dropped. A
    bad byte raises `refusal(message)` naming its line (found by reading the file again, which only
    a bad file pays for)."""
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", newline="")
    try:
        # Not `yield from`: closing this generator would close `text`, and with it the stream.
        for line in text:
            yield line
    except UnicodeDecodeError as exc:
        stream.seek(0)
        line = next(number for number, raw in enumerate(stream, start=1) if not _is_utf8(raw))
        raise refusal(
            f"Line {line} is not UTF-8 text ({exc.reason}); save the file as CSV UTF-8 and upload it again."
        ) from exc
    finally:
        text.detach()  # the caller closes the stream it opened


def _is_utf8(raw):
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True
