"""Drift: the periodic reconcile that repairs a resource's objects to what was applied."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from django.db import models, transaction
from django.db.models import F
from django.utils import timezone

from requests_app.errors import InvalidState
from requests_app.models import Cluster, Resource, ResourceState
from requests_app.reports import Entries, ReportEntry, texts_of
from requests_app.services import audit_record

from .. import cluster
from ..drift import differences, only_stamps, path_text
from ..errors import ClusterError
from ..models import ManagedObject
from ..renderers import (
    pod_security_labels_of,
)
from .plan import _secret_ref, change_in_flight, resource_manifests
from .teardown import resource_teardown

log = logging.getLogger(__name__)


class DriftOutcome(models.TextChoices):
    """What the reconcile did about one object (or resource)."""

    REAPPLIED = "reapplied", "deleted outside Leasehold: re-applied"
    RESTORED = "restored", "changed outside Leasehold: restored"
    DELETING = "deleting", "being deleted outside Leasehold: re-applied once it is gone"
    CLEANED = "cleaned", "object of a failed resource removed"
    ERROR = "error", "could not be reconciled"


# The outcomes that are findings: drift kept on the object and audited.
FINDINGS = (DriftOutcome.REAPPLIED, DriftOutcome.RESTORED, DriftOutcome.DELETING)
# The audit verb of each finding. A deletion under way is audited as `object_restored`, as it always
# was (it is re-applied once the object is gone); `drift_detected` is for findings not repaired.
_AUDIT_VERB = {
    DriftOutcome.REAPPLIED: "object_restored",
    DriftOutcome.RESTORED: "object_restored",
    DriftOutcome.DELETING: "object_restored",
}

# One line of a drift report: `name` is the object ("Namespace atlas-x"), or the resource for an error.
DriftEntry = ReportEntry[DriftOutcome]


@dataclass
class ReconcileReport(Entries[DriftOutcome]):
    """What one reconcile pass found: per resource, the objects it restored or reported. The lists
    (`findings`, …) are the entries' text, for people; classify by each entry's `outcome`."""

    checked: int = 0
    entries: list[DriftEntry] = field(default_factory=list)

    outcome_type = DriftOutcome

    findings = texts_of(*FINDINGS)
    cleaned = texts_of(DriftOutcome.CLEANED)
    errors = texts_of(DriftOutcome.ERROR)


def _finding(outcome: DriftOutcome, row: ManagedObject, note: str) -> DriftEntry:
    return DriftEntry(outcome, str(row.resource_id), str(row), note)


def _note_drift(row: ManagedObject, note: str, *, uid: str | None, resource: Resource, outcome: DriftOutcome) -> bool:
    """Keep the finding on the object and audit it, once: a compare-and-set on `drift_at`, so that two
    reconcile passes that met the same drift at the same time write one audit row. False when another
    pass noted it first. Audited with the verb of its `outcome`."""
    fields = {"drift": note, "drift_at": timezone.now()}
    if uid is not None:
        fields["uid"] = uid
    with transaction.atomic():
        if not ManagedObject.objects.filter(pk=row.pk, drift_at=row.drift_at).update(**fields):
            return False
        audit_record(
            actor=None,
            verb=_AUDIT_VERB.get(outcome, "drift_detected"),
            target=resource,
            request=resource.created_by_request,
            detail=f"{row}: {note}",
        )
    return True


def _still_reconcilable(resource: Resource) -> bool:
    """Read just before a write: the resource is still active and no upgrade or rollback took it over."""
    return Resource.objects.filter(pk=resource.pk, state=ResourceState.ACTIVE).exists() and not change_in_flight(
        resource
    )


def resource_reconcile(*, resource_id) -> list[DriftEntry]:
    """Compare an active resource's recorded objects with what it should run now and converge them.

    What it should run is `resource_manifests` (an app's current release). A missing object is
    re-applied; for an existing one, a dry-run apply shows what applying would change in the fields
    Leasehold owns: nothing, and nothing is written; only Leasehold's own stamps (a new lease
    expiry), and they are brought up to date quietly; anything else was changed outside Leasehold
    and is restored. An object being deleted by someone is reported and re-applied once it is gone.
    No row lock is held while the cluster is called: every write is preceded by a fresh read that the
    resource is still active and not being upgraded (a reclamation or an upgrade that starts meanwhile
    wins), and each finding is recorded once however many passes run. Every finding is kept on the
    object (the `objects` section of the resource) and written to the audit trail.
    """
    findings: list[DriftEntry] = []
    resource = (
        Resource.objects.filter(pk=resource_id, state=ResourceState.ACTIVE)
        .select_related("created_by_request__team__group", "created_by_request__requester", "team", "parent", "owner")
        .first()
    )
    if resource is None or change_in_flight(resource):  # no longer active, or an upgrade owns it now
        return findings
    request = resource.created_by_request
    manifests = {cluster.ref_of(m): m for m in resource_manifests(resource)}
    for row in resource.managed_objects.filter(deleted_at__isnull=True, applied_at__isnull=False):
        ref = cluster.ObjectRef(row.api_version, row.kind, row.namespace, row.name)
        manifest = manifests.get(ref)
        if manifest is None:
            continue
        live = cluster.read(ref)
        if live is None:
            if not _still_reconcilable(resource):
                break
            stored = cluster.apply(manifest)
            outcome = DriftOutcome.REAPPLIED
            note = "was deleted outside Leasehold; re-applied"
            if row.kind == "Secret" and _secret_ref(request) == ref:
                note += " with a new password (the old one existed only in the deleted Secret)"
        elif (live.get("metadata") or {}).get("deletionTimestamp"):
            note = "is being deleted outside Leasehold; it is re-applied once it is gone"
            deleting = DriftOutcome.DELETING
            if row.drift != note and _note_drift(row, note, uid=None, resource=resource, outcome=deleting):
                findings.append(_finding(deleting, row, note))
            continue
        else:
            changed = differences(live, cluster.apply(manifest, dry_run=True))
            if not changed:
                continue
            if not _still_reconcilable(resource):
                break
            stored = cluster.apply(manifest)
            if only_stamps(changed):
                continue
            outcome = DriftOutcome.RESTORED
            shown = ", ".join(path_text(path) for path in changed[:5]) + (" …" if len(changed) > 5 else "")
            note = f"fields owned by Leasehold were changed outside it ({shown}); restored"
            if pod_security_labels_of(live) != pod_security_labels_of(manifest):
                note = "Pod Security labels restored to the configured level (LEASEHOLD_POD_SECURITY)"
        uid = (stored.get("metadata") or {}).get("uid", "")
        if _note_drift(row, note, uid=uid, resource=resource, outcome=outcome):
            findings.append(_finding(outcome, row, note))
    return findings


def resources_reconcile(*, cluster_name: str | None = None) -> ReconcileReport:
    """One reconcile pass per cluster (or over `cluster_name` only): see `cluster_reconcile`."""
    report = ReconcileReport()
    clusters = Cluster.objects.order_by("name")
    if cluster_name is not None:
        clusters = clusters.filter(name=cluster_name)
    for row in clusters:
        if row.healthy is False:
            # Known down: nothing to compare with. Its resources are checked once the cluster answers.
            detail = f"does not answer ({row.health_detail}); its resources are checked once it does"
            report.entries.append(DriftEntry(DriftOutcome.ERROR, f"cluster {row.name}", f"cluster {row.name}", detail))
            continue
        with cluster.using(row):
            cluster_reconcile(row, report)
    return report


def cluster_reconcile(row: Cluster, report: ReconcileReport) -> None:
    """Reconcile the resources of one cluster (the calls go to the context's cluster, `cluster.using`):
    every active resource (namespaces first), then the teardown of failed resources whose objects could
    not all be removed when they failed."""
    active = (
        Resource.objects.filter(state=ResourceState.ACTIVE, cluster=row)
        .order_by(F("parent_id").asc(nulls_first=True), "created_at")
        .values_list("pk", flat=True)
    )
    for resource_id in active:
        report.checked += 1
        try:
            report.entries += resource_reconcile(resource_id=resource_id)
        except (ClusterError, InvalidState) as exc:
            report.entries.append(DriftEntry(DriftOutcome.ERROR, str(resource_id), str(resource_id), str(exc)))
            log.warning("reconcile of %s: %s", resource_id, exc)
    failed = Resource.objects.filter(
        state=ResourceState.FAILED, cluster=row, managed_objects__deleted_at__isnull=True
    ).distinct()
    for resource in failed:
        try:
            torn = resource_teardown(resource=resource)
        except ClusterError as exc:
            report.entries.append(DriftEntry(DriftOutcome.ERROR, str(resource.pk), str(resource.pk), str(exc)))
            continue
        for refused in torn.refused:
            log.warning("failed resource %s: left alone: %s", resource.pk, refused)
        report.entries += [
            DriftEntry(DriftOutcome.CLEANED, str(resource.pk), name) for name in torn.deleted + torn.gone
        ]
