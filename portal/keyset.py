"""Keyset (cursor) pagination of any ordered queryset: a page starts after the last row of the one
before, found by the values of its sort key, so page N costs the same as page 1 (OFFSET would read
and drop every earlier row) and a row added or removed meanwhile shifts nothing.

The cursor is opaque to clients: the sort key's values of the last row shown, as URL-safe base64 of
JSON. A tampered cursor only moves the start within the same queryset (the caller's, already
scoped); one that does not fit it is InvalidCursor.
"""

import base64
import binascii
import json

from django.core.exceptions import ValidationError
from django.db.models import F, OrderBy, Q

from portal.errors import UserFacingError

MAX_CURSOR_LENGTH = 2000


class InvalidCursor(UserFacingError):
    """The cursor was not made by this list (or by this list with other filters)."""

    def __init__(self):
        super().__init__("This cursor does not belong to this list; start again without one.")


def _sort_key(queryset):
    """[(annotation name, expression, descending, nulls_last)] of `queryset`'s ordering, which must
    end with a unique column (the primary key) for the order to be total."""
    key = []
    for position, item in enumerate(queryset.query.order_by):
        if isinstance(item, str):
            order = F(item.removeprefix("-")).desc() if item.startswith("-") else F(item).asc()
        elif isinstance(item, OrderBy):
            order = item
        else:
            order = item.asc()
        if order.nulls_first:
            raise ValueError("keyset pagination orders nulls as PostgreSQL does by default, or last")
        key.append((f"keyset_{position}", order.expression, order.descending, bool(order.nulls_last)))
    return key


def _encode(values):
    text = json.dumps(values, separators=(",", ":"), default=str)  # dates and UUIDs as their text
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _decode(cursor, length):
    if len(cursor) > MAX_CURSOR_LENGTH:
        raise InvalidCursor
    try:
        values = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)), parse_constant=_no_constant)
    except (binascii.Error, ValueError):
        raise InvalidCursor from None
    if not isinstance(values, list) or len(values) != length or not all(map(_storable, values)):
        raise InvalidCursor
    return values


def _no_constant(name):
    raise ValueError(f"{name} is no value of a column")


def _storable(value):
    # What a column compares with: PostgreSQL text holds no NUL (nor lone surrogates, in UTF-8).
    if isinstance(value, str):
        return "\x00" not in value and value.encode("utf-8", "surrogatepass").decode("utf-8", "ignore") == value
    return value is None or isinstance(value, int | float)


def _beyond(name, value, descending, nulls_last):
    """Rows whose key column `name` comes after `value` in the order (not equal to it)."""
    if value is None:
        # Nulls sort last (or first, descending without nulls_last): after a null come only nulls.
        return Q(pk__in=[]) if nulls_last or not descending else Q(**{f"{name}__isnull": False})
    after = Q(**{f"{name}__lt" if descending else f"{name}__gt": value})
    return after | Q(**{f"{name}__isnull": True}) if nulls_last or not descending else after


def _equal(name, value):
    return Q(**{f"{name}__isnull": True}) if value is None else Q(**{name: value})


def page_after(queryset, cursor, limit):
    """The `limit` rows of the ordered `queryset` after the row `cursor` names (from the start when
    it is empty), and the cursor of the next page (None on the last page).

    Two queries: the page's primary keys and sort key first, on `queryset`'s rows alone (narrow
    rows, sorted or read in index order), then those rows with whatever `queryset` selects and
    prefetches along. One query would join every matching row to its relations before sorting them.
    """
    key = _sort_key(queryset)
    names = [name for name, _, _, _ in key]
    keyed = queryset.annotate(**{name: expression for name, expression, _, _ in key})
    if cursor:
        values = _decode(cursor, len(key))
        after = Q(pk__in=[])
        for position, (name, _, descending, nulls_last) in enumerate(key):
            equal_so_far = Q()
            for earlier, value in zip(key[:position], values, strict=False):
                equal_so_far &= _equal(earlier[0], value)
            after |= equal_so_far & _beyond(name, values[position], descending, nulls_last)
        # The first column's bound alone, repeated outside the OR, lets an index seek to the page.
        first_name, _, first_descending, first_nulls_last = key[0]
        first = _beyond(first_name, values[0], first_descending, first_nulls_last) | _equal(first_name, values[0])
        try:
            keyed = keyed.filter(first & after)
        except (ValidationError, ValueError, TypeError, OverflowError):
            raise InvalidCursor from None
    page = list(keyed.select_related(None).prefetch_related(None).values_list("pk", *names)[: limit + 1])
    more = len(page) > limit
    page = page[:limit]
    by_pk = queryset.order_by().in_bulk([row[0] for row in page])
    rows = [by_pk[row[0]] for row in page if row[0] in by_pk]
    return rows, _encode(page[-1][1:]) if more else None


def rows_in_order(queryset, page_size=2000):
    """Every row of the ordered `queryset` (its ordering ending with a unique column), read a page
    at a time by keyset: constant memory for an export of millions of rows. QuerySet.iterator()
    streams only through a server-side cursor, which a transaction-mode pooler (PgBouncer) rules
    out: there it would fetch every row at once."""
    cursor = ""
    while True:
        rows, cursor = page_after(queryset, cursor, page_size)
        yield from rows
        if cursor is None:
            return
