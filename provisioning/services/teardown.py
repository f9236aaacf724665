"""Teardown: the plan of what to delete (never a protected namespace), its run, and its record."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.utils import timezone

from requests_app.models import Resource
from requests_app.services import reserved_namespaces

from .. import cluster
from ..models import ManagedObject
from ..renderers import (
    LABEL_RESOURCE,
)


@dataclass
class TeardownReport:
    """What a teardown did: deleted, already gone, still going away, and refused (left alone)."""

    deleted: list[str] = field(default_factory=list)
    gone: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    # The rows of the objects that are gone now (deleted at once, or found gone): marked by `teardown_record`.
    gone_rows: list[int] = field(default_factory=list, repr=False)

    @property
    def complete(self) -> bool:
        return not self.pending

    def add(self, other: TeardownReport) -> None:
        self.deleted += other.deleted
        self.gone += other.gone
        self.pending += other.pending
        self.refused += other.refused
        self.gone_rows += other.gone_rows


def _protected(obj: ManagedObject | TeardownItem) -> bool:
    names = reserved_namespaces()
    if obj.kind == "Namespace" and obj.api_version == "v1":
        return obj.name in names
    return obj.namespace in names


def teardown_order(objects: list[ManagedObject]) -> list[ManagedObject]:
    """Objects inside namespaces first, cluster-scoped ones (the Namespace) last."""
    return sorted(objects, key=lambda o: (o.namespace == "", o.pk))


@dataclass(frozen=True)
class TeardownItem:
    """One recorded object to remove, as plain data: what the cluster calls need, read before they start
    (they may run in other threads, which must not touch the ORM)."""

    pk: int
    api_version: str
    kind: str
    namespace: str
    name: str

    @property
    def ref(self) -> cluster.ObjectRef:
        return cluster.ObjectRef(self.api_version, self.kind, self.namespace, self.name)

    @property
    def is_namespace(self) -> bool:
        return self.kind == "Namespace" and self.api_version == "v1"

    def __str__(self) -> str:
        return str(self.ref)


@dataclass(frozen=True)
class TeardownPlan:
    """What a teardown of one resource works on: its recorded objects not yet deleted, in teardown order,
    and the protected ones it refuses without a call. Read from the database by `teardown_plan`; carried
    out by `teardown_run` (cluster calls only); its outcome written by `teardown_record`."""

    resource_id: str
    items: tuple[TeardownItem, ...]
    refused: tuple[str, ...] = ()


def teardown_plan(resource: Resource, *, objects: list[ManagedObject] | None = None) -> TeardownPlan:
    """The resource's recorded objects still to remove (one query, none when the caller read `objects`,
    the rows not deleted yet, for many resources at once)."""
    items, refused = [], []
    if objects is None:
        objects = list(resource.managed_objects.filter(deleted_at__isnull=True))
    for obj in teardown_order(objects):
        item = TeardownItem(obj.pk, obj.api_version, obj.kind, obj.namespace, obj.name)
        if _protected(item):
            refused.append(f"{item}: protected namespace")
        else:
            items.append(item)
    return TeardownPlan(str(resource.pk), tuple(items), tuple(refused))


# A read and a conditional delete that keep meeting a changed object give up for this pass after this many tries.
TEARDOWN_ATTEMPTS = 3


def _remove(item: TeardownItem, resource_id: str, *, dry_run: bool) -> tuple[str, str]:
    """Delete one object if, and only if, it carries the resource's label: a read, then a DELETE whose
    preconditions (the uid and resourceVersion just read) make the label check and the deletion one
    atomic decision; the DELETE's answer says whether it is gone or still terminating (no read after).
    Returns (verdict, note): gone, deleted (gone at once), pending (terminating), refused."""
    for _ in range(TEARDOWN_ATTEMPTS):
        live = cluster.read(item.ref)
        if live is None:
            return "gone", ""
        meta = live.get("metadata") or {}
        owner = (meta.get("labels") or {}).get(LABEL_RESOURCE)
        if owner != resource_id:
            return "refused", f"label {LABEL_RESOURCE}={owner!r} does not name this resource"
        if dry_run:
            return "deleted", ""
        if meta.get("deletionTimestamp"):
            return "pending", "still terminating"
        outcome = cluster.delete(item.ref, uid=meta.get("uid", ""), resource_version=meta.get("resourceVersion", ""))
        if outcome == cluster.Deletion.CONFLICT:
            continue  # changed (or replaced) since the read: decide again on what is there now
        if outcome == cluster.Deletion.TERMINATING:
            return "deleted+pending", "still terminating"
        return "deleted" if outcome == cluster.Deletion.DELETED else "gone", ""
    return "pending", "kept changing while being deleted; tried again by the next pass"


def _note(report: TeardownReport, item: TeardownItem, verdict: str, note: str) -> None:
    label = str(item)
    if verdict == "gone":
        report.gone.append(label)
        report.gone_rows.append(item.pk)
    elif verdict == "refused":
        report.refused.append(f"{label}: {note}")
    elif verdict == "pending":
        report.pending.append(f"{label}: {note}")
    else:
        report.deleted.append(label)
        if verdict == "deleted+pending":
            report.pending.append(f"{label}: {note}")
        else:
            report.gone_rows.append(item.pk)


def teardown_run(plan: TeardownPlan, *, dry_run: bool = False, concurrent: bool = True) -> TeardownReport:
    """Remove the plan's objects from the cluster: cluster calls only, no database (safe in a thread).

    A namespace resource's Namespace goes first: once it is proven the resource's (its label) and its
    DELETE accepted, it takes everything inside with it, so the objects recorded inside it are not
    deleted one by one (they are pending with it, and gone when it is gone: two calls per namespace,
    not three per object). A Namespace that is not the resource's is left alone, and each object
    recorded inside it is checked and deleted on its own. Independent objects are removed with at most
    LEASEHOLD_K8S_CONCURRENCY calls in flight (`concurrent`; a caller that already runs many plans at
    once passes False).
    """
    report = TeardownReport(refused=list(plan.refused))
    items = list(plan.items)
    namespace = next((i for i in items if i.is_namespace), None)
    if namespace is not None:
        verdict, note = _remove(namespace, plan.resource_id, dry_run=dry_run)
        if verdict != "refused":
            _note(report, namespace, verdict, note)
            inside = [i for i in items if i.namespace == namespace.name]
            if dry_run and verdict == "deleted":  # would go with it
                report.deleted += [str(i) for i in inside]
            elif verdict in ("gone", "deleted"):  # gone already: so is everything that was inside it
                report.gone += [str(i) for i in inside]
                report.gone_rows += [i.pk for i in inside]
            items = [i for i in items if i is not namespace and i not in inside]
        else:
            report.refused.append(f"{namespace}: {note}")
            items = [i for i in items if i is not namespace]

    def remove(item: TeardownItem) -> tuple[str, str]:
        return _remove(item, plan.resource_id, dry_run=dry_run)

    verdicts = cluster.map_bounded(remove, items) if concurrent else [remove(i) for i in items]
    for item, (verdict, note) in zip(items, verdicts, strict=True):
        _note(report, item, verdict, note)
    return report


def teardown_record(report: TeardownReport) -> None:
    """Mark the objects the teardown found gone (one query)."""
    if report.gone_rows:
        ManagedObject.objects.filter(pk__in=report.gone_rows, deleted_at__isnull=True).update(deleted_at=timezone.now())


def resource_teardown(*, resource: Resource, dry_run: bool = False) -> TeardownReport:
    """Delete the objects recorded for `resource` that still carry its `leasehold.io/resource` label.

    An object whose label is missing or names another resource is left alone and reported; protected
    namespaces are never touched. Objects that are going away (a Terminating namespace) are `pending`.
    Each object costs a read and a conditional delete (see `teardown_run`), and a namespace resource's
    objects go with its Namespace.
    """
    report = teardown_run(teardown_plan(resource), dry_run=dry_run)
    if not dry_run:
        teardown_record(report)
    return report
