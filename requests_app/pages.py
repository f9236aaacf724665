"""Pages of the web lists: filtered like the API, read `size + 1` rows at an offset, never counted."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.db.models import QuerySet
from django.http import QueryDict

WEB_PAGE_SIZE = 50
# Far beyond any list; a larger number would reach the database out of its range (a 500).
MAX_OFFSET = 10_000_000


@dataclass
class Page:
    rows: list[Any]
    offset: int
    size: int
    previous_query: str | None = None
    next_query: str | None = None
    params: dict[str, str] = field(default_factory=dict)

    @property
    def number(self) -> int:
        return self.offset // self.size + 1


def _offset(params: QueryDict) -> int:
    try:
        return min(max(0, int(params.get("offset", "0"))), MAX_OFFSET)
    except ValueError:
        return 0


def page_of(queryset: QuerySet, params: QueryDict, size: int = WEB_PAGE_SIZE) -> Page:
    """One page of an ordered queryset; the links keep the filters of `params`."""
    offset = _offset(params)
    rows = list(queryset[offset : offset + size + 1])
    page = Page(rows=rows[:size], offset=offset, size=size)
    page.params = {k: str(v) for k, v in params.items() if k != "offset" and v}

    def link(to: int) -> str:
        query = params.copy()
        query.pop("offset", None)
        if to:
            query["offset"] = str(to)
        return query.urlencode()

    if len(rows) > size:
        page.next_query = link(offset + size)
    if offset:
        page.previous_query = link(max(0, offset - size))
    return page
