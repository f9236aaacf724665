"""Pages of the web lists: filtered like the API, walked by a keyset (a cursor), never counted.

A list is ordered by `(-created_at, -id)` with an index behind it. A page after a row is read as
`created_at <= c AND (created_at < c OR id < i)`: the first term bounds the index range, so PostgreSQL
starts the walk at the cursor and stops after `size + 1` rows whatever the page's depth (an `OFFSET`
reads and throws away every row before it). "Newer" walks the same index the other way.
The cursor is `<created_at in microseconds since the epoch>.<id>`: plain, and only ever compared.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db.models import Q, QuerySet
from django.http import QueryDict
from django_filters import FilterSet

WEB_PAGE_SIZE = 50
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
CURSOR_PARAMS = ("after", "before")


@dataclass
class Page:
    rows: list[Any]
    size: int
    previous_query: str | None = None
    next_query: str | None = None
    # The filters in force (empty values and the cursor left out): they go into every link.
    params: dict[str, str] = field(default_factory=dict)
    # True when the page was reached through a cursor (it is not the first page).
    walked: bool = False
    # Filter values that were not understood, said to the reader (the list is shown without them).
    errors: list[str] = field(default_factory=list)

    @property
    def filtered(self) -> bool:
        return bool(self.params)

    @property
    def first_query(self) -> str:
        query = QueryDict(mutable=True)
        for key, value in self.params.items():
            query[key] = value
        return query.urlencode()


def cursor_of(row) -> str:
    since = row.created_at - EPOCH
    micros = (since.days * 86_400 + since.seconds) * 1_000_000 + since.microseconds
    return f"{micros}.{row.pk}"


def parse_cursor(text: str | None) -> tuple[datetime, uuid.UUID] | None:
    """The cursor's `(created_at, id)`, or None for anything that is not one (the list starts over)."""
    if not text:
        return None
    micros, _, pk = text.partition(".")
    try:
        return EPOCH + timedelta(microseconds=int(micros)), uuid.UUID(pk)
    except (ValueError, OverflowError):
        return None


def _older_than(at: datetime, pk: uuid.UUID) -> Q:
    return Q(created_at__lte=at) & (Q(created_at__lt=at) | Q(pk__lt=pk))


def _newer_than(at: datetime, pk: uuid.UUID) -> Q:
    return Q(created_at__gte=at) & (Q(created_at__gt=at) | Q(pk__gt=pk))


def page_of(queryset: QuerySet, params: QueryDict, *, filters: Iterable[str], size: int = WEB_PAGE_SIZE) -> Page:
    """One page of a queryset ordered by `(-created_at, -id)`; the links keep the `filters` of `params`.

    One query per page (two when a "newer" link reaches the top of the list with less than a page left,
    which then shows the first page)."""
    known = set(filters)
    kept = {k: str(v) for k, v in params.items() if k in known and v}
    page = Page(rows=[], size=size, params=kept)
    after, before = parse_cursor(params.get("after")), parse_cursor(params.get("before"))
    has_older = has_newer = False
    if before is not None:
        newer = list(queryset.filter(_newer_than(*before)).reverse()[: size + 1])
        if len(newer) > size:
            page.rows, has_newer, has_older, page.walked = newer[:size][::-1], True, True, True
        else:
            before = None  # fewer than a page above: that is the first page
    if before is None:
        if after is not None:
            queryset = queryset.filter(_older_than(*after))
        rows = list(queryset[: size + 1])
        page.rows, has_older, has_newer = rows[:size], len(rows) > size, after is not None
        page.walked = after is not None

    def link(key: str, row) -> str:
        query = QueryDict(mutable=True)
        for name, value in kept.items():
            query[name] = value
        query[key] = cursor_of(row)
        return query.urlencode()

    if page.rows and has_older:
        page.next_query = link("after", page.rows[-1])
    if page.rows and has_newer:
        page.previous_query = link("before", page.rows[0])
    return page


def filtered_page(filterset: FilterSet, params: QueryDict, size: int = WEB_PAGE_SIZE) -> Page:
    """A page of a list's FilterSet (the API's own, so the page and the API filter alike). A value the
    filter does not take is left out of the list, of the links, and said in `errors`."""
    invalid = filterset.form.errors if filterset.is_bound else {}
    page = page_of(filterset.qs, params, filters=[n for n in filterset.filters if n not in invalid], size=size)
    for name, messages in invalid.items():
        label = filterset.filters[name].label or name if name in filterset.filters else name
        page.errors += [f"{str(label).capitalize()}: {message} (ignored)" for message in messages]
    return page
