"""Sections that higher apps add to the API representation of requests and resources.

The bottom layer cannot import approvals, provisioning or leases; each of them registers here, in
its AppConfig.ready(), a function that renders its part (`approval`, `lease`, `objects`, ...).
A function that lives with the app's serializers is registered by its dotted path (`lazy_section`):
importing Django REST framework in ready() would make every process pay for it at start-up, the
reclaimer's CronJob and `manage.py` commands included, which never render a section.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db.models import Q
from django.utils.module_loading import import_string

request_sections: dict[str, Callable[[Any], Any]] = {}
resource_sections: dict[str, Callable[[Any], Any]] = {}
# What reads a section for a whole page of requests at once (the API lists, which then prefetch nothing):
# each is called with the page's requests and sets what its section renders from.
request_pages: list[Callable[[list[Any]], None]] = []
# Lookups a list of requests prefetches so that the sections cost no query per row.
request_prefetch: list[Any] = []
request_select: list[str] = []
# The columns of `request_select`'s relations that the sections read (lists load only these: `only()`).
request_select_fields: list[str] = []
# The same for a list of resources (the `lease`, `objects`, `connection` and `releases` sections).
resource_prefetch: list[Any] = []
resource_select: list[str] = []
resource_select_fields: list[str] = []
# Who else may see a request besides its team and admins (approvers of its steps): user -> Q, or None
# when the user sees no request that way.
request_visibility: list[Callable[[Any], Q | None]] = []
# What higher apps say about a request before it is filed (the plan preview): approvals registers
# `approval`, the route its policy would give the request (the same computation that routes it).
request_previews: dict[str, Callable[[Any], Any]] = {}


class lazy_section:  # noqa: N801  (used like a function: `request_sections["x"] = lazy_section("a.b.c")`)
    """A section function given by its dotted path, imported the first time it renders."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._render: Callable[[Any], Any] | None = None

    def __call__(self, obj: Any) -> Any:
        if self._render is None:
            self._render = import_string(self.path)
        return self._render(obj)

    def __repr__(self) -> str:
        return f"lazy_section({self.path!r})"
