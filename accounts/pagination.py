"""Paging through logs without counting them: a page of a log with millions of entries costs
what a page of a short one costs."""

from django.core.paginator import EmptyPage, Page, PageNotAnInteger, Paginator


class UncountedPage(Page):
    uncounted = True

    def __init__(self, object_list, number, paginator, *, has_next):
        super().__init__(object_list, number, paginator)
        self._has_next = has_next

    def has_next(self):
        return self._has_next


class UncountedPaginator(Paginator):
    """Knows whether there is a next page by fetching one row more than a page; has no page total."""

    def validate_number(self, number):
        try:
            number = int(number)
        except (TypeError, ValueError) as exc:
            raise PageNotAnInteger("That page number is not an integer") from exc
        if number < 1:
            raise EmptyPage("That page number is less than 1")
        return number

    def page(self, number):
        number = self.validate_number(number)
        bottom = (number - 1) * self.per_page
        rows = list(self.object_list[bottom : bottom + self.per_page + 1])
        if not rows and number > 1:
            raise EmptyPage("That page contains no results")
        return UncountedPage(rows[: self.per_page], number, self, has_next=len(rows) > self.per_page)
