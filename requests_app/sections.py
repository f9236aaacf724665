"""Sections that higher apps add to the API representation of requests and resources.

The bottom layer cannot import approvals, provisioning or leases; each of them registers here, in
its AppConfig.ready(), a function that renders its part (`approval`, `lease`, `objects`, ...).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

request_sections: dict[str, Callable[[Any], Any]] = {}
resource_sections: dict[str, Callable[[Any], Any]] = {}
