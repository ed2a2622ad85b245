"""CSV files the portal writes for people to open in a spreadsheet: every cell of every export goes
through `neutralize_formula`, and `csv_lines` streams them a line at a time."""

import csv

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
