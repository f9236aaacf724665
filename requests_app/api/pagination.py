"""The API's pages."""

from __future__ import annotations

from rest_framework import pagination


class LimitOffsetPagination(pagination.LimitOffsetPagination):
    """DRF's `limit`/`offset` pages with a largest page: an unbounded `limit` reached the database as a
    number out of its range (a 500). A larger limit is served as this one; `next` links the rest."""

    max_limit = 1000
