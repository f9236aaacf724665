"""Restoring a reclaimed database from its backup: filing the request, starting the restore Job, and
checking the restores in flight."""

from __future__ import annotations

from datetime import datetime

from django.db.models import QuerySet

from provisioning import cluster
from provisioning.errors import ClusterError
from requests_app.errors import InvalidState, NotAllowed
from requests_app.models import (
    Cluster,
    Resource,
    ResourceRequest,
    ResourceState,
)
from requests_app.services import (
    audit_record,
    request_submit,
)

from .. import backup
from ..kinds import LEASE_KINDS, backed_up_kinds
from ..models import Backup, BackupKind, BackupState
from .backups import _finish_backup, _launch_job
from .extension import _may_manage
from .opening import database_now
from .report import Outcome, ReclaimReport


def resource_restore(*, resource: Resource, actor) -> ResourceRequest:
    """File a request that re-creates a reclaimed resource as it last ran (the frozen template and
    provider of its request); a database is then filled from its last successful backup."""
    if not _may_manage(actor, resource):
        raise NotAllowed("Only the owner's team can restore this resource.")
    if resource.state != ResourceState.RECLAIMED:
        raise InvalidState(f"Only a reclaimed resource can be restored; this one is {resource.state}.")
    old = resource.created_by_request
    spec = dict(resource.spec)
    if resource.parent is not None:
        # The namespace is found again by name: restore it first if it was reclaimed too.
        spec["namespace"] = resource.parent.namespace_name
    frozen = {**old.frozen, "restore_of": str(resource.pk)}
    if LEASE_KINDS.get(resource.kind).backed_up:
        dump = (
            resource.backups.filter(kind=BackupKind.DUMP, state=BackupState.SUCCEEDED).order_by("-started_at").first()
        )
        if dump is not None:
            frozen["restore_from"] = dump.location
    request = request_submit(
        requester=actor,
        team=resource.team.slug,
        kind=resource.kind,
        name=resource.name,
        environment=resource.environment,
        lease_days=resource.lease_days,
        justification=f"restore of {resource} ({resource.pk})",
        spec=spec,
        frozen=frozen,
        # Back where it was (its backups and its namespace are there): a cluster that no longer takes new
        # requests refuses the restore with that reason instead of it landing elsewhere.
        cluster=resource.cluster.name,
    )
    audit_record(actor=actor, verb="restore_requested", target=resource, request=old, detail=f"request {request.pk}")
    return request


def restore_start(*, resource_id) -> Backup | None:
    """Run pg_restore of the dump a recreated database was filed with (once), on the database's cluster."""
    database = Resource.objects.select_related("created_by_request", "parent", "team", "cluster").get(pk=resource_id)
    location = database.created_by_request.frozen.get("restore_from")
    if not location or database.backups.filter(kind=BackupKind.RESTORE).exists():
        return None
    now = database_now()
    with cluster.using(database.cluster):
        manifests = backup.restore_manifests(
            database=database, password=backup.database_password(database), location=location, at=now
        )
        return _launch_job(database=database, manifests=manifests, kind=BackupKind.RESTORE, location=location, now=now)


def _restores_waiting() -> QuerySet[Resource]:
    """Restored databases whose restore has not started (the cluster could not be reached right after
    their activation)."""
    return Resource.objects.filter(
        kind__in=backed_up_kinds(),
        state=ResourceState.ACTIVE,
        created_by_request__frozen__has_key="restore_from",
    ).exclude(backups__kind=BackupKind.RESTORE)


def restore_clusters() -> set[int]:
    """The clusters with restores to start or to check."""
    waiting = _restores_waiting().values_list("cluster_id", flat=True)
    running = Backup.objects.filter(kind=BackupKind.RESTORE, state=BackupState.RUNNING)
    running_on = running.values_list("resource__cluster_id", flat=True).order_by().distinct()
    return set(waiting.order_by().distinct()) | set(running_on)


def check_restores(*, now: datetime, report: ReclaimReport, on: Cluster) -> None:
    """Record how the running restore Jobs of the databases on cluster `on` ended (a failure alerts like
    a failed backup); the caller is inside `cluster.using(on)`."""
    # A restore that could not start right after activation (cluster unreachable) starts here.
    for resource_id in _restores_waiting().filter(cluster=on).values_list("pk", flat=True):
        try:
            restore_start(resource_id=resource_id)
        except ClusterError as exc:
            report.add(Outcome.ERROR, f"restore of {resource_id}", resource_id=resource_id, detail=str(exc))
    running = Backup.objects.filter(kind=BackupKind.RESTORE, state=BackupState.RUNNING, resource__cluster=on)
    for record in running.select_related("resource"):
        try:
            job = cluster.read(cluster.ObjectRef("batch/v1", "Job", record.job_namespace, record.job_name))
        except ClusterError as exc:
            report.add(
                Outcome.ERROR, f"restore of {record.resource.name}", resource_id=record.resource_id, detail=str(exc)
            )
            continue
        outcome = backup.job_outcome(job)
        if outcome != BackupState.RUNNING:
            _finish_backup(record, outcome, now)
