"""Reading a whole ordered queryset a page at a time (portal/keyset.rows_in_order), as the CSV
exports do: every row once, in order, with ties on the sort column, in two queries a page."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from portal.keyset import rows_in_order
from spaces.models import Space

from .factories import OrganizationFactory, SpaceFactory

pytestmark = pytest.mark.django_db


def test_every_row_is_read_once_in_order_a_page_at_a_time():
    organizations = OrganizationFactory.create_batch(3)
    for index in range(10):  # names repeat across organizations: ties on the sort column
        SpaceFactory(organization=organizations[index % 3], name=f"Room {index % 4}")
    spaces = Space.objects.order_by("-name", "pk")

    with CaptureQueriesContext(connection) as queries:
        read = list(rows_in_order(spaces, page_size=3))

    assert [space.pk for space in read] == list(spaces.values_list("pk", flat=True))
    assert len(queries) == 2 * 4  # four pages of at most three, each its keys then its rows
