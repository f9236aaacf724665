"""The report of one reclamation pass, and the labels it lists leases by."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db.models import QuerySet

from requests_app.models import (
    Kind,
)

from ..models import Lease


@dataclass
class ReclaimReport:
    """What one reclamation pass did (or, dry-run, would do)."""

    now: datetime
    dry_run: bool
    notices: list[str] = field(default_factory=list)
    earlier_mail: list[str] = field(default_factory=list)
    handed_over: list[str] = field(default_factory=list)
    to_grace: list[str] = field(default_factory=list)
    backups: list[str] = field(default_factory=list)
    reclaimed: list[str] = field(default_factory=list)
    in_progress: list[str] = field(default_factory=list)
    deferred: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    # The line in `notices` of each expiry notice this pass queued, by outbox id: it goes there only
    # once the mail backend accepted the mail.
    notice_mail: dict[int, str] = field(default_factory=dict, repr=False)

    def sections(self) -> list[tuple[str, list[str]]]:
        would = "would " if self.dry_run else ""
        return [
            (f"{would}notify", self.notices),
            (f"{would}send mail queued earlier (retries)", self.earlier_mail),
            (f"{would}hand over to the team", self.handed_over),
            (f"{would}move to grace (quarantine)", self.to_grace),
            (f"{would}back up", self.backups),
            (f"{would}reclaim (delete)", self.reclaimed),
            ("still going away", self.in_progress),
            (f"left for the next pass (RECLAIM_MAX_PER_RUN={settings.RECLAIM_MAX_PER_RUN})", self.deferred),
            ("left alone (not ours, or protected)", self.refused),
            ("errors", self.errors),
        ]

    def lines(self) -> list[str]:
        out = [f"Reclamation pass at {self.now.isoformat()} ({'dry run' if self.dry_run else 'live'})"]
        for title, items in self.sections():
            out.append(f"{title}: {len(items)}")
            out.extend(f"  - {item}" for item in items)
        return out


# What `_label` reads: a namespace's name is made of its team's slug, a database's of its namespace's.
_LABEL_RELATED = ("resource", "resource__team", "resource__parent__team")


def _label(lease: Lease) -> str:
    r = lease.resource
    return _label_of(r.kind, r.namespace_name, r.name, r.pk, lease.expires_at)


def _label_of(kind: str, namespace: str, name: str, resource_id, expires_at: datetime) -> str:
    # The display name (CONTRACT.md §6), built from plain values: a pass may list thousands.
    where = namespace if kind == Kind.NAMESPACE else f"{namespace} / {name}"
    return f"{kind} {where} (resource {resource_id}, lease expires {expires_at:%Y-%m-%d %H:%M})"


@dataclass(frozen=True)
class _LeaseRow:
    """A lease as a pass lists it, read as plain values (a pass may list thousands)."""

    pk: int
    resource_id: Any
    kind: str
    namespace: str
    name: str
    label: str


# What `_lease_rows` reads: the lease's expiry and what its resource's namespace name is made of (a
# namespace's: its team's slug and its name; a database's or app's: its namespace's).
_DUE_VALUES = (
    "pk",
    "expires_at",
    "resource_id",
    "resource__kind",
    "resource__name",
    "resource__team__slug",
    "resource__parent__name",
    "resource__parent__team__slug",
)


def _lease_rows(leases: QuerySet[Lease]) -> list[_LeaseRow]:
    """The leases as a pass lists them: one query, no model instances."""
    rows = []
    for pk, expires_at, resource_id, kind, name, team, parent, parent_team in leases.values_list(*_DUE_VALUES):
        namespace = f"{team}-{name}" if kind == Kind.NAMESPACE else f"{parent_team}-{parent}" if parent else ""
        label = _label_of(kind, namespace, name, resource_id, expires_at)
        rows.append(_LeaseRow(pk, resource_id, kind, namespace, name, label))
    return rows
