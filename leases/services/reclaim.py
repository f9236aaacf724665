"""Reclaiming a lease: claiming it, tearing its objects down (children first), keeping the report and
the manifests a restore needs, and releasing a resource early at its owner's request."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Prefetch, Q, prefetch_related_objects
from django.utils import timezone
from django_fsm import can_proceed

from provisioning import cluster
from provisioning.errors import ClusterError
from provisioning.models import ManagedObject
from provisioning.services.plan import resource_manifests
from provisioning.services.teardown import TeardownPlan, TeardownReport, teardown_plan, teardown_record, teardown_run
from requests_app import kinds
from requests_app.errors import InvalidState, NotAllowed, Unavailable
from requests_app.models import (
    Action,
    AuditEvent,
    Cluster,
    RequestState,
    Resource,
    ResourceRequest,
    ResourceState,
)
from requests_app.services import (
    followups_withdraw,
    transition_apply,
)

from ..kinds import backed_up_kinds
from ..models import Lease, LeaseState
from .backups import _ensure_backups
from .extension import _may_manage
from .grace import _claim_lease, _release_lease
from .opening import database_now

log = logging.getLogger(__name__)


TAKEN = "taken by another pass"
WITHDRAWN = "withdrawn: the resource is being reclaimed, so it can no longer be changed or extended"


@dataclass(frozen=True)
class ReclaimStep:
    """What one lease's reclaim came to: `done` (everything gone and recorded) and the note kept on the
    lease; whether it waits for backups (`backed_up`: it destroys databases, and `backup_failed`: one of
    their backups failed, so nothing was deleted); `taken` when another pass holds the lease."""

    done: bool
    note: str
    backed_up: bool = False
    backup_failed: bool = False
    taken: bool = False


def lease_reclaim(*, lease_id: int, now: datetime) -> tuple[bool, str]:
    """Back up, then delete a lease's objects, then mark lease, resource and request reclaimed.

    The lease is claimed (concurrent passes on several cron hosts skip it: each lease is reclaimed
    once) and no row lock is held while the cluster is called. Returns (done, note); not done while a
    backup runs or failed, or objects are still going away (the follow-up carries on). A pass does the
    same for many leases at once (`_reclaim_batch`).
    """
    token = _claim_lease(lease_id, state__in=[LeaseState.GRACE, LeaseState.RECLAIMING])
    if token is None:
        return False, TAKEN
    try:
        if why := _reclaim_start([lease_id], now=now).get(lease_id):
            return False, why
        return _teardown_and_finish(lease_id=lease_id, token=token, now=now)
    finally:
        _release_lease(lease_id, token)


def _claim_leases(lease_ids: list[int], token: uuid.UUID) -> list[int]:
    """Claim the leases of a batch that are past grace or reclaiming and that no other pass holds, all
    with one token (each lease is still claimed on its own: see `_claim_lease`). Rows another
    transaction has locked right now are skipped, not waited for: the next pass or follow-up takes them."""
    now = timezone.now()
    with transaction.atomic():
        free = list(
            Lease.objects.select_for_update(skip_locked=True)
            .filter(pk__in=lease_ids, state__in=[LeaseState.GRACE, LeaseState.RECLAIMING])
            .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))
            .values_list("pk", flat=True)
        )
        Lease.objects.filter(pk__in=free).update(
            claim_token=token, claimed_until=now + timedelta(seconds=settings.LEASEHOLD_LEASE_CLAIM_SECONDS)
        )
    return free


def _reclaim_start(lease_ids: list[int], *, now: datetime) -> dict[int, str]:
    """Move claimed leases that are past grace, and their resources, to `reclaiming` (each audited; the
    changes still waiting for approval are withdrawn) in one short transaction that commits before
    anything is deleted: from then on they can no longer be extended. Locks leases before resources,
    each in key order, as every other writer of a lease does. Returns why a lease was not started
    ("still in grace"); a lease already reclaiming is simply carried on."""
    why: dict[int, str] = {}
    with transaction.atomic():
        due = []
        for lease in Lease.objects.select_for_update().filter(pk__in=lease_ids).order_by("pk"):
            if lease.state != LeaseState.GRACE:
                continue
            if lease.grace_until is None or lease.grace_until > now:
                why[lease.pk] = "still in grace"
            else:
                due.append(lease)
        if not due:
            return why
        resources = Resource.objects.select_for_update(of=("self",)).select_related("created_by_request")
        by_id = {r.pk: r for r in resources.filter(pk__in=[lease.resource_id for lease in due]).order_by("pk")}
        events = []
        for lease in due:
            resource = by_id[lease.resource_id]
            events += [_start_reclaim(lease, resource), _start_reclaim(resource, resource)]
        # The same rows and the same audit lines as `transition_apply` per object, written in three
        # statements for the batch instead of four per lease (the rows are locked: nothing else moves them).
        Lease.objects.filter(pk__in=[lease.pk for lease in due]).update(state=LeaseState.RECLAIMING)
        Resource.objects.filter(pk__in=list(by_id)).update(state=ResourceState.RECLAIMING, updated_at=timezone.now())
        AuditEvent.objects.bulk_create(events)
        # Most resources have no change waiting: one query finds the few that have.
        waiting = (
            ResourceRequest.objects.filter(resource_id__in=list(by_id), state=RequestState.PENDING_APPROVAL)
            .exclude(action=Action.CREATE)
            .values_list("resource_id", flat=True)
        )
        for resource_id in sorted(set(waiting)):
            followups_withdraw(resource=by_id[resource_id], reason=WITHDRAWN)
    return why


def _start_reclaim(obj: Lease | Resource, resource: Resource) -> AuditEvent:
    """Run the `start_reclaim` transition of a locked lease or resource in memory (the caller writes the
    rows) and return its audit line, as `transition_apply` would write it."""
    old = obj.state
    if not can_proceed(obj.start_reclaim):
        raise InvalidState(f"Cannot start reclaim a {obj._meta.verbose_name} that is {old}.")
    obj.start_reclaim()
    return AuditEvent(
        verb="reclaim_started",
        target_type=obj._meta.model_name or "",
        target_id=str(obj.pk),
        request=resource.created_by_request,
        resource=resource,
        from_state=old,
        to_state=obj.state,
    )


# What a teardown reads of a resource: its request, as rendered for the manifests kept for a restore.
_TEARDOWN_RELATED = ("created_by_request__team__group", "created_by_request__requester", "team", "parent", "owner")


@dataclass
class _Teardown:
    """One claimed lease on its way through a teardown: what was read before the cluster calls, and the
    outcome when it ended before them (a backup still running or failed)."""

    lease_id: int
    token: uuid.UUID
    keep: list[dict[str, Any]] = field(default_factory=list)
    backup_note: str = ""
    backed_up: bool = False  # the lease destroys databases: their backups came first
    plan: TeardownPlan | None = None
    outcome: ReclaimStep | None = None
    error: ClusterError | None = None
    kept_now: bool = False  # `keep` was rendered now (not yet on the lease)


def _teardown_prepare(lease_ids: list[int], *, token: uuid.UUID, now: datetime) -> dict[int, _Teardown]:
    """The database side before the teardowns of claimed leases: backups first (a running or failed one
    ends that lease's teardown here), the manifests to keep for a restore, and the objects to remove.
    A handful of queries for the whole batch, not a handful per lease."""
    leases = list(
        Lease.objects.filter(pk__in=lease_ids)
        .select_related(*(f"resource__{r}" for r in _TEARDOWN_RELATED))
        .order_by("pk")
    )
    resources = [lease.resource for lease in leases]
    prefetch_related_objects(
        resources,
        Prefetch(
            "managed_objects",
            queryset=ManagedObject.objects.filter(deleted_at__isnull=True).order_by("pk"),
            to_attr="live_objects",
        ),
    )
    # Only the kinds that are backed up (databases), and namespaces with such in them, have something to back up.
    dumped = backed_up_kinds()
    holders = [r.pk for r in resources if not kinds.get(r.kind).in_namespace]
    with_databases = set(
        Resource.objects.filter(parent_id__in=holders, kind__in=dumped)
        .exclude(state__in=Resource.TERMINAL)
        .values_list("parent_id", flat=True)
    )
    jobs = {}
    for lease in leases:
        resource = lease.resource
        job = jobs[lease.pk] = _Teardown(lease_id=lease.pk, token=token)
        if resource.kind in dumped or resource.pk in with_databases:
            try:
                check = _ensure_backups(resource=resource, now=now)
            except ClusterError as exc:  # this lease's backup could not be checked: the others go on
                job.error = exc
                continue
            job.backup_note, job.backed_up = check.note, check.databases > 0
            if not check.ready:
                Lease.objects.filter(pk=lease.pk, claim_token=token).update(last_report=job.backup_note)
                job.outcome = ReclaimStep(False, job.backup_note, backed_up=job.backed_up, backup_failed=check.failed)
                continue
        job.keep = lease.last_manifests
        if not job.keep:
            job.keep, job.kept_now = _manifests_to_keep(resource), True
        job.plan = teardown_plan(resource, objects=resource.live_objects)
    return jobs


def _teardown_finish(finished: list[tuple[_Teardown, TeardownReport]], *, now: datetime) -> list[ReclaimStep]:
    """The database side after the cluster calls, in one transaction for the batch: the objects found
    gone are marked, each lease keeps its report; a lease with nothing pending any more is marked
    reclaimed with its resource and request (and the children that went with a namespace). A lease
    another pass took over meanwhile (its claim ran out) is left to that pass."""
    if not finished:
        return []
    outcomes: list[ReclaimStep] = []
    with transaction.atomic():
        gone = TeardownReport()
        for _, report in finished:
            gone.gone_rows += report.gone_rows
        teardown_record(gone)
        locked = Lease.objects.select_for_update().filter(
            pk__in=[job.lease_id for job, _ in finished], state=LeaseState.RECLAIMING
        )
        tokens = dict(locked.order_by("pk").values_list("pk", "claim_token"))
        waiting = []
        for job, report in finished:
            note = _teardown_note(job, report)
            if tokens.get(job.lease_id) != job.token:
                outcomes.append(ReclaimStep(False, TAKEN, taken=True))
            elif not report.complete:
                waiting.append((job, note))
                outcomes.append(ReclaimStep(False, note, backed_up=job.backed_up))
            else:
                lease = Lease.objects.get(pk=job.lease_id)  # locked above
                outcomes.append(ReclaimStep(True, _teardown_complete(lease, job, note, now), backed_up=job.backed_up))
        _keep_reports(waiting)
    return outcomes


_KEEP_REPORT_AND_MANIFESTS = 'UPDATE "leases_lease" SET "last_report" = %s, "last_manifests" = %s WHERE "id" = %s'
_KEEP_REPORT = 'UPDATE "leases_lease" SET "last_report" = %s WHERE "id" = %s'


def _keep_reports(waiting: list[tuple[_Teardown, str]]) -> None:
    """Write each lease's report, and the manifests kept for a restore when they were rendered just now,
    in two statements for the batch. The caller holds the leases' locks and checked their claims. (The
    ORM's `bulk_update` builds a CASE expression per row and field: a third of a pass's time here.)"""
    prep = Lease._meta.get_field("last_manifests").get_db_prep_save
    first = [(note, prep(job.keep, connection), job.lease_id) for job, note in waiting if job.kept_now]
    again = [(note, job.lease_id) for job, note in waiting if not job.kept_now]
    with connection.cursor() as cursor:
        if first:
            cursor.executemany(_KEEP_REPORT_AND_MANIFESTS, first)
        if again:
            cursor.executemany(_KEEP_REPORT, again)


def _teardown_note(job: _Teardown, report: TeardownReport) -> str:
    return "; ".join(
        ([job.backup_note] if job.backup_note else [])
        + [f"deleted {', '.join(report.deleted)}"] * bool(report.deleted)
        + [f"pending {', '.join(report.pending)}"] * bool(report.pending)
        + [f"left alone {', '.join(report.refused)}"] * bool(report.refused)
    )


def _teardown_complete(lease: Lease, job: _Teardown, note: str, now: datetime) -> str:
    """Everything is gone: mark lease, resource and request reclaimed (the caller holds the lease's lock)."""
    lease.last_report = note
    lease.last_manifests = job.keep
    lease.save(update_fields=["last_report", "last_manifests"])
    resource = Resource.objects.select_for_update().get(pk=lease.resource_id)
    request = ResourceRequest.objects.select_for_update().get(pk=resource.created_by_request_id)
    transition_apply(
        lease,
        "mark_reclaimed",
        actor=None,
        verb="lease_reclaimed",
        resource=resource,
        request=request,
        at=now,
        detail=note,
    )
    transition_apply(resource, "mark_reclaimed", actor=None, verb="reclaimed", request=request, detail=note)
    if request.state == RequestState.ACTIVE:
        transition_apply(request, "mark_reclaimed", actor=None, verb="reclaimed", resource=resource)
    _reclaim_children(namespace=resource, now=now)
    return note


def _teardown_and_finish(*, lease_id: int, token: uuid.UUID, now: datetime) -> tuple[bool, str]:
    """Back up, keep the manifests, delete the objects (outside any transaction, the lease claimed);
    when all are gone, mark everything reclaimed in one short transaction. On the lease's cluster."""
    with cluster.using(Cluster.objects.get(resources__lease=lease_id)):
        job = _teardown_prepare([lease_id], token=token, now=now)[lease_id]
        if job.error is not None:
            raise job.error
        if job.outcome is not None or job.plan is None:
            step = job.outcome or ReclaimStep(False, "")
        else:
            step = _teardown_finish([(job, teardown_run(job.plan))], now=now)[0]
    return step.done, step.note


def _teardown_quietly(plan: TeardownPlan) -> TeardownReport | ClusterError:
    """One lease's cluster calls in a pass's batch: its error is its own, not the batch's."""
    try:
        return teardown_run(plan, concurrent=False)
    except ClusterError as exc:
        return exc


def _manifests_to_keep(resource: Resource) -> list[dict[str, Any]]:
    """The objects as rendered now, without any password: what a restore re-creates."""
    try:
        return resource_manifests(resource, with_secrets=False)
    except (ValueError, KeyError, InvalidState):
        return []


def _reclaim_children(*, namespace: Resource, now: datetime) -> None:
    """Databases and apps went with their namespace: record them reclaimed too."""
    detail = f"went with namespace {namespace.namespace_name}"
    for child in Resource.objects.select_for_update().filter(parent=namespace).exclude(state__in=Resource.TERMINAL):
        request = ResourceRequest.objects.select_for_update().get(pk=child.created_by_request_id)
        lease = Lease.objects.select_for_update().filter(resource=child).first()
        if lease is not None and lease.state in (LeaseState.ACTIVE, LeaseState.GRACE):
            transition_apply(
                lease, "start_reclaim", actor=None, verb="reclaim_started", resource=child, request=request
            )
        if lease is not None and lease.state == LeaseState.RECLAIMING:
            transition_apply(
                lease,
                "mark_reclaimed",
                actor=None,
                verb="lease_reclaimed",
                resource=child,
                request=request,
                at=now,
                detail=detail,
            )
        if child.state in (ResourceState.ACTIVE, ResourceState.GRACE):
            transition_apply(child, "start_reclaim", actor=None, verb="reclaim_started", request=request)
            followups_withdraw(resource=child, reason=WITHDRAWN)
        if child.state == ResourceState.RECLAIMING:
            transition_apply(child, "mark_reclaimed", actor=None, verb="reclaimed", request=request, detail=detail)
        child.managed_objects.filter(deleted_at__isnull=True).update(deleted_at=now)
        if request.state == RequestState.ACTIVE:
            transition_apply(request, "mark_reclaimed", actor=None, verb="reclaimed", resource=child)


def resource_release(*, resource: Resource, actor) -> tuple[bool, str]:
    """Give a resource back now: no grace; databases are backed up first (CONTRACT.md §3 release).

    When a backup is still running or the namespace still terminating, reclamation passes finish it.
    """
    if not _may_manage(actor, resource):
        raise NotAllowed("Only the owner's team can release this resource.")
    now = database_now()
    with transaction.atomic():
        lease = Lease.objects.select_for_update().filter(resource=resource).first()
        if lease is None or lease.state not in (LeaseState.ACTIVE, LeaseState.GRACE):
            raise InvalidState(f"Only an active resource can be released; this one is {resource.state}.")
        resource = Resource.objects.select_for_update().get(pk=resource.pk)
        request = resource.created_by_request
        transition_apply(lease, "start_reclaim", actor=actor, verb="released", resource=resource, request=request)
        transition_apply(resource, "start_reclaim", actor=actor, verb="released", request=request)
        followups_withdraw(resource=resource, reason=WITHDRAWN)
    token = _claim_lease(lease.pk, state=LeaseState.RECLAIMING)
    if token is None:
        return False, "a reclamation pass is already deleting it"
    try:
        return _teardown_and_finish(lease_id=lease.pk, token=token, now=now)
    except Unavailable as exc:
        # The release stands (it is recorded); the follow-up deletes once the cluster answers again.
        log.warning("release of %s: the cluster cannot be reached yet: %s", resource.pk, exc)
        return False, "the Kubernetes cluster cannot be reached right now; it is deleted as soon as it can be"
    finally:
        _release_lease(lease.pk, token)
