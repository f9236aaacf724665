"""The report of one reclamation pass, and the labels it lists leases by."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import QuerySet

from provisioning import cluster
from requests_app.models import (
    Kind,
)
from requests_app.reports import Entries, ReportEntry, texts_of
from requests_app.selectors import in_key_order

from ..models import Lease


class Outcome(models.TextChoices):
    """What became of a lease (or a mail, or a check) in a pass: the section of the report it is listed
    in, and the `outcome` label of the pass's metrics (its value)."""

    NOTICE = "notices", "notify"
    EARLIER_MAIL = "earlier_mail", "send mail queued earlier (retries)"
    HANDED_OVER = "handed_over", "hand over to the team"
    TO_GRACE = "to_grace", "move to grace (quarantine)"
    BACKUP = "backups", "back up"
    RECLAIMED = "reclaimed", "reclaim (delete)"
    IN_PROGRESS = "in_progress", "still going away"
    DEFERRED = "deferred", "left for the next pass"
    REFUSED = "refused", "left alone (not ours, or protected)"
    ERROR = "errors", "errors"
    # A backup that failed, so nothing of its lease was deleted: listed (and counted) with the errors,
    # and counted on its own too.
    BACKUP_FAILED = "backup_failed", "backup failed"


# The outcomes listed (and counted) as errors.
ERROR_OUTCOMES = (Outcome.ERROR, Outcome.BACKUP_FAILED)
# The sections a dry run says it "would" do.
_WOULD = (
    Outcome.NOTICE,
    Outcome.EARLIER_MAIL,
    Outcome.HANDED_OVER,
    Outcome.TO_GRACE,
    Outcome.BACKUP,
    Outcome.RECLAIMED,
)


# One line of a reclamation report.
ReclaimEntry = ReportEntry[Outcome]


@dataclass
class ReclaimReport(Entries[Outcome]):
    """What one reclamation pass did (or, dry-run, would do): its entries, in the order they happened.

    The pages, the command and the metrics read each entry's `outcome`; the per-outcome lists
    (`report.errors`, …) are the entries' text, for people."""

    now: datetime
    dry_run: bool
    entries: list[ReclaimEntry] = field(default_factory=list)
    # The entry of each expiry notice this pass queued, by outbox id: it is added (as a notice) only
    # once the mail backend accepted the mail.
    notice_mail: dict[int, ReclaimEntry] = field(default_factory=dict, repr=False)
    outcome_type = Outcome

    def add(self, outcome: Outcome, name: str, *, resource_id: Any = "", detail: str = "") -> ReclaimEntry:
        entry = ReclaimEntry(outcome, str(resource_id or ""), name, detail)
        self.entries.append(entry)
        return entry

    def counts(self) -> dict[str, int]:
        """Entries per outcome; the errors include the failed backups (counted on their own too)."""
        counts = super().counts()
        counts[Outcome.ERROR.value] += counts[Outcome.BACKUP_FAILED.value]
        return counts

    notices = texts_of(Outcome.NOTICE)
    earlier_mail = texts_of(Outcome.EARLIER_MAIL)
    handed_over = texts_of(Outcome.HANDED_OVER)
    to_grace = texts_of(Outcome.TO_GRACE)
    backups = texts_of(Outcome.BACKUP)
    reclaimed = texts_of(Outcome.RECLAIMED)
    in_progress = texts_of(Outcome.IN_PROGRESS)
    deferred = texts_of(Outcome.DEFERRED)
    refused = texts_of(Outcome.REFUSED)
    errors = texts_of(*ERROR_OUTCOMES)

    def sections(self) -> list[tuple[str, list[ReclaimEntry]]]:
        would = "would " if self.dry_run else ""
        out = []
        for outcome in Outcome:
            if outcome == Outcome.BACKUP_FAILED:
                continue  # listed with the errors
            title = f"{would}{outcome.label}" if outcome in _WOULD else str(outcome.label)
            if outcome == Outcome.DEFERRED:
                title += f" (RECLAIM_MAX_PER_RUN={settings.RECLAIM_MAX_PER_RUN} per cluster)"
            out.append((title, self.of(*ERROR_OUTCOMES) if outcome == Outcome.ERROR else self.of(outcome)))
        return out

    def lines(self) -> list[str]:
        out = [f"Reclamation pass at {self.now.isoformat()} ({'dry run' if self.dry_run else 'live'})"]
        for title, items in self.sections():
            out.append(f"{title}: {len(items)}")
            out.extend(f"  - {item}" for item in items)
        return out


# What `_label` reads: a namespace's name is made of its team's slug, a database's of its namespace's;
# and the cluster it is on.
_LABEL_RELATED = ("resource", "resource__team", "resource__parent__team", "resource__cluster")


def _label(lease: Lease) -> str:
    r = lease.resource
    return _label_of(r.kind, r.namespace_name, r.name, r.pk, lease.expires_at, r.cluster.name)


def _label_of(kind: str, namespace: str, name: str, resource_id, expires_at: datetime, cluster_name: str = "") -> str:
    # The display name (CONTRACT.md §6), built from plain values: a pass may list thousands.
    where = namespace if kind == Kind.NAMESPACE else f"{namespace} / {name}"
    on = on_cluster_words(cluster_name)
    return f"{kind} {where}{on} (resource {resource_id}, lease expires {expires_at:%Y-%m-%d %H:%M})"


def on_cluster_words(name: str) -> str:
    """The words " on cluster NAME" for a cluster other than `default`, so that a pass's lines say where;
    nothing for `default` (the lines of a one-cluster install read as they always did)."""
    return "" if name in ("", cluster.DEFAULT) else f" on cluster {name}"


@dataclass(frozen=True)
class _LeaseRow:
    """A lease as a pass lists it, read as plain values (a pass may list thousands)."""

    pk: int
    resource_id: Any
    kind: str
    namespace: str
    name: str
    label: str
    cluster_id: int | None = None


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
    "resource__cluster_id",
    "resource__cluster__name",
)


def _lease_rows(leases: QuerySet[Lease], *, key: str | None = None) -> list[_LeaseRow]:
    """The leases as a pass lists them, no model instances: one query, or, with `key`, in (`key`, pk)
    order a page at a time (in_key_order: the due leases of a large install)."""
    found: Iterator[tuple]
    if key is None:
        found = ((None, *row) for row in leases.values_list(*_DUE_VALUES))
    else:
        found = in_key_order(leases.values_list(key, *_DUE_VALUES), key, key_of=lambda row: (row[0], row[1]))
    rows = []
    for (
        _,
        pk,
        expires_at,
        resource_id,
        kind,
        name,
        team,
        parent,
        parent_team,
        cluster_id,
        cluster_name,
    ) in found:
        namespace = f"{team}-{name}" if kind == Kind.NAMESPACE else f"{parent_team}-{parent}" if parent else ""
        label = _label_of(kind, namespace, name, resource_id, expires_at, cluster_name)
        rows.append(_LeaseRow(pk, resource_id, kind, namespace, name, label, cluster_id))
    return rows
