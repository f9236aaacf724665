"""What the leases app adds to each kind: whether its data is backed up before deletion (and restored
into a re-created resource), and what its resource page shows besides the common part.

Each module of this package registers one kind's (`LEASE_KINDS.register`); a kind without one has no
backup and no page extras. See requests_app.kinds for the kinds themselves.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from requests_app.kinds.base import KindExtensions


@dataclass(frozen=True)
class LeaseKind:
    name: str
    # Its data is dumped before the resource is deleted, and a restore fills the re-created one from it.
    backed_up: bool = False
    # Context for its resource page (and the partial `leases/kinds/<kind>.html`, if there is one).
    page_context: Callable[[Any], dict] = field(default=lambda resource: {})


LEASE_KINDS: KindExtensions[LeaseKind] = KindExtensions("leases.kinds", LeaseKind)


def backed_up_kinds() -> list[str]:
    """The kinds whose data is backed up before deletion."""
    from requests_app import kinds

    return [kind.name for kind in kinds.all() if LEASE_KINDS.get(kind.name).backed_up]
