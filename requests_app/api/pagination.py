"""The API's pages."""

from __future__ import annotations

from typing import Any

from rest_framework import pagination
from rest_framework.response import Response
from rest_framework.utils.urls import replace_query_param


class LimitOffsetPagination(pagination.LimitOffsetPagination):
    """DRF's `limit`/`offset` pages with a largest page: an unbounded `limit` reached the database as a
    number out of its range (a 500). A larger limit is served as this one; `next` links the rest."""

    max_limit = 1000


class UncountedLimitOffsetPagination(LimitOffsetPagination):
    """`limit`/`offset` pages that never count the whole list: a `COUNT(*)` over every visible row costs
    O(N) on each call (hundreds of ms at 100k requests). One more row than the page is read instead;
    `next` is given when it exists. `count` stays in the answer, as null, so clients that read it keep
    working; the page query walks the `(-created_at, -id)` index and stops after `limit + 1` rows."""

    def paginate_queryset(self, queryset, request, view=None):  # type: ignore[override]
        self.request = request
        self.limit = self.get_limit(request)
        if self.limit is None:
            return None
        self.offset = self.get_offset(request)
        rows = list(queryset[self.offset : self.offset + self.limit + 1])
        self.has_next = len(rows) > self.limit
        self.count = None  # type: ignore[assignment]
        return rows[: self.limit]

    def get_next_link(self) -> str | None:
        if not self.has_next or self.request is None or self.limit is None or self.offset is None:
            return None
        url = self.request.build_absolute_uri()
        url = replace_query_param(url, self.limit_query_param, self.limit)
        return replace_query_param(url, self.offset_query_param, self.offset + self.limit)

    def get_html_context(self) -> Any:
        # The browsable API's page links need the count; it gets previous and next only.
        return {"previous_url": self.get_previous_link(), "next_url": self.get_next_link(), "page_links": []}

    def get_paginated_response(self, data) -> Response:
        return Response(
            {"count": None, "next": self.get_next_link(), "previous": self.get_previous_link(), "results": data}
        )

    def get_paginated_response_schema(self, schema: dict[str, Any]) -> dict[str, Any]:
        out = super().get_paginated_response_schema(schema)
        out["properties"]["count"] = {"type": "integer", "nullable": True, "description": "Not counted: null."}
        out["required"] = ["results"]
        return out
