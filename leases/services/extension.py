"""Extending leases (one or a namespace with its children), correcting an expiry, restoring quarantined
workloads after an extension, and fulfilling approved extension requests."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.utils import timezone

from provisioning import cluster
from provisioning.errors import ClusterError
from provisioning.services.plan import resource_reapply
from requests_app.errors import InvalidState, NotAllowed, ValidationFailed
from requests_app.models import (
    Action,
    Kind,
    RequestState,
    Resource,
    ResourceRequest,
)
from requests_app.selectors import teams_of, user_is_admin
from requests_app.services import (
    audit_record,
    request_file_followup,
    transition_apply,
)

from .. import workloads
from ..models import Lease, LeaseState
from .opening import _parent_expiry, database_now

log = logging.getLogger(__name__)


def _may_manage(user, resource: Resource) -> bool:
    return user_is_admin(user) or teams_of(user).filter(pk=resource.team_id).exists()


def lease_extend(
    *, resource: Resource, actor, days: int, justification: str, now: datetime | None = None
) -> tuple[str, Lease | ResourceRequest]:
    """Extend a lease by `days`: at once within policy (`("extended", lease)`), else through approval
    (`("requested", extend request)`). The owner, a teammate or an admin may ask."""
    if not _may_manage(actor, resource):
        raise NotAllowed("Only the owner's team can extend this lease.")
    if not isinstance(days, int) or isinstance(days, bool) or not 1 <= days <= settings.LEASE_MAX_DAYS:
        raise ValidationFailed({"days": [f"Must be a whole number of days from 1 to {settings.LEASE_MAX_DAYS}."]})
    if not (justification or "").strip():
        raise ValidationFailed({"justification": ["Say why the resource is still needed."]})
    now = now or database_now()
    lease = Lease.objects.filter(resource=resource).first()
    if lease is None or lease.state not in (LeaseState.ACTIVE, LeaseState.GRACE):
        raise InvalidState(f"Only an active or quarantined resource can be extended; this one is {resource.state}.")
    new_expiry = _extended_expiry(lease, days, now)
    parent_expiry = _parent_expiry(resource)
    if parent_expiry is not None and new_expiry > parent_expiry:
        raise ValidationFailed(
            {"days": [f"The namespace's lease ends {parent_expiry:%Y-%m-%d %H:%M} UTC: extend the namespace first."]}
        )
    if _beyond_total(lease, new_expiry):
        request = request_file_followup(
            requester=actor, resource=resource, action=Action.EXTEND, lease_days=days, justification=justification
        )
        return "requested", request
    return "extended", lease_apply_extension(lease_id=lease.pk, days=days, actor=actor, now=now, reason=justification)


@dataclass(frozen=True)
class ChildExtension:
    """What became of one app or database extended together with its namespace."""

    resource: Resource
    outcome: str  # "extended", "requested" (an extend request waits for approval) or "failed"
    restored: bool = False  # it was quarantined and its lease is active again
    detail: str = ""  # the new expiry, the request filed, or why it failed
    workloads_pending: bool = False  # restored, but the cluster did not take the replica counts yet (next pass)


def lease_extend_together(
    *, namespace: Resource, actor, days: int, justification: str, child_ids: list, now: datetime | None = None
) -> tuple[str, Lease | ResourceRequest, list[ChildExtension]]:
    """Extend a namespace's lease, then the leases of the chosen apps and databases in it by as many days.

    Each is one `lease_extend`: its own checks and limits (a child that would go beyond the policy files its
    own extend request, one that would outlive the namespace's lease is refused), its own transaction and
    audit record. The namespace's failure raises as `lease_extend` does and extends nothing; a child's
    failure is reported in its `ChildExtension` and does not undo the others.
    """
    if namespace.kind != Kind.NAMESPACE:
        raise ValidationFailed({"children": ["Only a namespace's lease extends together with what lives in it."]})
    chosen = set(map(str, child_ids))
    children = list(
        Resource.objects.filter(parent=namespace, pk__in=chosen)
        .select_related("team", "parent", "parent__team", "lease")
        .order_by("kind", "name")
    )
    if len(children) != len(chosen):
        raise ValidationFailed({"children": ["Choose among the apps and databases of this namespace."]})
    now = now or database_now()
    outcome, result = lease_extend(resource=namespace, actor=actor, days=days, justification=justification, now=now)
    done: list[ChildExtension] = []
    for child in children:
        was_in_grace = getattr(child, "lease", None) is not None and child.lease.state == LeaseState.GRACE
        try:
            child_outcome, child_result = lease_extend(
                resource=child, actor=actor, days=days, justification=justification, now=now
            )
        except (ValidationFailed, InvalidState, NotAllowed) as exc:
            reason = (
                " ".join(m for ms in exc.errors.values() for m in ms) if isinstance(exc, ValidationFailed) else str(exc)
            )
            done.append(ChildExtension(child, "failed", detail=reason))
        else:
            if isinstance(child_result, Lease):
                detail = f"{child_result.expires_at:%Y-%m-%d %H:%M} UTC"
                done.append(ChildExtension(child, child_outcome, restored=was_in_grace, detail=detail))
            else:
                done.append(ChildExtension(child, child_outcome, detail=str(child_result.pk)))
    restored = [c.resource.pk for c in done if c.restored]
    pending = set(
        Lease.objects.filter(resource_id__in=restored)
        .exclude(quarantined_replicas={})
        .values_list("resource_id", flat=True)
    )
    done = [replace(c, workloads_pending=c.resource.pk in pending) for c in done]
    return outcome, result, done


def lease_extension_limits(*, lease: Lease, now: datetime) -> dict[str, Any]:
    """The limits `lease_extend` applies to this lease, for people to read before they ask: the longest
    term, the total a lease may run without approval (and until when), the days left within it, and the
    namespace's expiry that a database's or app's lease cannot pass."""
    longest = lease.starts_at + timedelta(days=settings.LEASE_MAX_TOTAL_DAYS)
    # The most days an extension asked now gets at once: the largest term `_beyond_total` lets through.
    days_left = min(settings.LEASE_MAX_DAYS, max(0, (longest - max(lease.expires_at, now)).days + 1))
    while days_left and _beyond_total(lease, _extended_expiry(lease, days_left, now)):
        days_left -= 1
    return {
        "max_days": settings.LEASE_MAX_DAYS,
        "max_total_days": settings.LEASE_MAX_TOTAL_DAYS,
        "total_until": longest,
        "days_left": days_left,
        "parent_expiry": _parent_expiry(lease.resource),
    }


def _beyond_total(lease: Lease, new_expiry: datetime) -> bool:
    """A lease that would then have run longer than LEASE_MAX_TOTAL_DAYS needs approval to get there."""
    return (new_expiry - lease.starts_at).days > settings.LEASE_MAX_TOTAL_DAYS


def _extended_expiry(lease: Lease, days: int, now: datetime) -> datetime:
    # During grace the new term runs from now, not from the past expiry.
    return max(lease.expires_at, now) + timedelta(days=days)


def lease_apply_extension(
    *, lease_id: int, days: int, actor, now: datetime, reason: str = "", fulfils: ResourceRequest | None = None
) -> Lease:
    """Move the expiry, leave grace (restoring the workloads), re-stamp the objects' annotation.

    `fulfils`: the approved extend request this carries out; it is marked fulfilled in the same
    transaction (and nothing happens when it is no longer approved), so a redelivered task never
    extends twice.
    """
    with transaction.atomic():
        if fulfils is not None:
            fulfils = ResourceRequest.objects.select_for_update().get(pk=fulfils.pk)
            if fulfils.state != RequestState.APPROVED:
                return Lease.objects.get(pk=lease_id)
        lease = Lease.objects.select_for_update().select_related("resource").get(pk=lease_id)
        if lease.state not in (LeaseState.ACTIVE, LeaseState.GRACE):
            raise InvalidState(f"The lease is {lease.state}; it can no longer be extended.")
        resource = Resource.objects.select_for_update().get(pk=lease.resource_id)
        old = lease.expires_at
        lease.extensions += 1
        _move_expiry(lease, resource, _extended_expiry(lease, days, now), actor=actor)
        audit_record(
            actor=actor,
            verb="lease_extended",
            target=lease,
            resource=resource,
            request=resource.created_by_request,
            detail=f"{old:%Y-%m-%d %H:%M} → {lease.expires_at:%Y-%m-%d %H:%M} UTC (+{days} days): {reason}".strip(),
        )
        if fulfils is not None:
            transition_apply(fulfils, "fulfil", actor=None, verb="extended", resource=resource)
    _restore_and_restamp(resource, lease.pk)
    return lease


def _move_expiry(lease: Lease, resource: Resource, expires_at: datetime, *, actor) -> None:
    """Set a locked lease's expiry and save it; a lease in grace comes back to active (its remembered
    replica counts stay until the workloads are really back). Runs inside the caller's transaction."""
    request = resource.created_by_request
    lease.expires_at = expires_at
    lease.notices_sent = []  # the notices count down to the new expiry
    if lease.state == LeaseState.GRACE:
        transition_apply(lease, "restore", actor=actor, verb="lease_restored", resource=resource, request=request)
        transition_apply(resource, "restore", actor=actor, verb="restored", request=request)
    lease.save()
    Resource.objects.filter(pk=resource.pk).update(lease_expires_at=lease.expires_at)
    resource.lease_expires_at = lease.expires_at


def _restore_and_restamp(resource: Resource, lease_id: int) -> None:
    """After the commit of a new expiry: bring quarantined workloads back and re-stamp the annotation, on
    the resource's cluster."""
    try:
        with cluster.using(resource.cluster):
            lease_restore_workloads(lease_id=lease_id)
            restamp_objects(resource)
    except (ClusterError, ImproperlyConfigured) as exc:
        # The database holds the new expiry and still remembers the replica counts: the next pass
        # restores the workloads, and the next re-apply repairs the objects' annotation.
        log.warning("new expiry of %s: could not update the cluster yet: %s", resource.pk, exc)


def lease_expiry_errors(*, lease: Lease, expires_at: datetime, now: datetime) -> dict[str, list[str]]:
    """Why an admin cannot set `lease`'s expiry to `expires_at` (empty: they can).

    A correction stays within what the policy lets a lease run without approval (LEASE_MAX_TOTAL_DAYS from
    its start), never outlives the namespace's lease, and never cuts a namespace's lease below the leases
    of what lives in it: longer goes through an extension request, shorter children are corrected first.
    """
    if lease.state not in (LeaseState.ACTIVE, LeaseState.GRACE):
        return {"expires_at": [f"The lease is {lease.state}; its expiry can no longer change."]}
    if expires_at <= now:
        return {"expires_at": [f"Must be in the future (now is {now:%Y-%m-%d %H:%M} UTC); to end it now, release it."]}
    longest = lease.starts_at + timedelta(days=settings.LEASE_MAX_TOTAL_DAYS)
    if expires_at > longest:
        return {
            "expires_at": [
                f"At most {settings.LEASE_MAX_TOTAL_DAYS} days from the start ({longest:%Y-%m-%d %H:%M} UTC); "
                "longer needs an extension request through approval."
            ]
        }
    resource = lease.resource
    parent_expiry = _parent_expiry(resource)
    if parent_expiry is not None and expires_at > parent_expiry:
        return {
            "expires_at": [f"The namespace's lease ends {parent_expiry:%Y-%m-%d %H:%M} UTC: correct that one first."]
        }
    if resource.kind == Kind.NAMESPACE:
        later = Lease.objects.filter(
            resource__parent=resource,
            state__in=(LeaseState.ACTIVE, LeaseState.GRACE),
            expires_at__gt=expires_at,
        ).select_related("resource")
        names = sorted(child.resource.name for child in later)
        if names:
            return {"expires_at": [f"Leases in this namespace end later ({', '.join(names)}): correct those first."]}
    return {}


def lease_correct_expiry(
    *, lease_id: int, expires_at: datetime, actor, reason: str, now: datetime | None = None
) -> Lease:
    """An admin corrects a lease's expiry (a wrong date, an agreed end): audited with the expiry before and
    after and the reason. The extension count is not touched; notices count down to the new expiry; a lease
    in grace comes back (its workloads are restored); the objects' annotation is re-stamped.

    Raises NotAllowed (not an admin), ValidationFailed (see `lease_expiry_errors`).
    """
    if not user_is_admin(actor):
        raise NotAllowed("Only admins can correct a lease's expiry.")
    if not (reason or "").strip():
        raise ValidationFailed({"reason": ["Say why the expiry changes."]})
    now = now or database_now()
    with transaction.atomic():
        lease = Lease.objects.select_for_update().select_related("resource").get(pk=lease_id)
        errors = lease_expiry_errors(lease=lease, expires_at=expires_at, now=now)
        if errors:
            raise ValidationFailed(errors)
        if lease.expires_at == expires_at:
            return lease
        resource = Resource.objects.select_for_update().get(pk=lease.resource_id)
        old = lease.expires_at
        _move_expiry(lease, resource, expires_at, actor=actor)
        audit_record(
            actor=actor,
            verb="lease_corrected",
            target=lease,
            resource=resource,
            request=resource.created_by_request,
            detail=f"expires: {old:%Y-%m-%d %H:%M:%S} → {lease.expires_at:%Y-%m-%d %H:%M:%S} UTC: {reason.strip()}",
        )
    _restore_and_restamp(resource, lease.pk)
    return lease


def lease_restore_workloads(*, lease_id: int) -> list[str]:
    """Scale a lease's workloads back to the remembered counts (after an extension ended its grace, or a
    quarantine that did not finish); the counts are forgotten only once the cluster has them. Raises
    ClusterError (the pass retries)."""
    lease = Lease.objects.select_related("resource__cluster").get(pk=lease_id)
    counts = dict(lease.quarantined_replicas)
    if not counts or lease.state != LeaseState.ACTIVE:
        return []
    with cluster.using(lease.resource.cluster):
        restored = workloads.restore(lease.resource, counts)
    with transaction.atomic():
        if Lease.objects.filter(pk=lease_id, state=LeaseState.ACTIVE, quarantined_replicas=counts).update(
            quarantined_replicas={}
        ):
            for line in restored:
                audit_record(
                    actor=None,
                    verb="workload_restored",
                    target=lease.resource,
                    request=lease.resource.created_by_request,
                    detail=line,
                )
    return restored


def restamp_objects(resource: Resource) -> None:
    """Re-apply the resource's current objects (an app's current release, never the first request's
    render) so `leasehold.io/lease-expires` shows the current expiry."""
    resource_reapply(resource=resource)


def extension_fulfil(*, request_id) -> None:
    """An approved extend request takes effect (idempotent: a task delivered twice extends once).

    A lease that is already being reclaimed (or gone) can no longer be extended: the request fails
    with that reason, so that it never says "approved" for nothing.
    """
    request = ResourceRequest.objects.select_related("resource").get(pk=request_id)
    if request.state != RequestState.APPROVED or request.action != Action.EXTEND or request.resource is None:
        return
    lease = Lease.objects.filter(resource=request.resource).first()
    try:
        if lease is None:
            raise InvalidState("The resource has no lease any more.")
        lease_apply_extension(
            lease_id=lease.pk,
            days=request.lease_days,
            actor=None,
            now=database_now(),
            reason=f"approved request {request.pk}: {request.justification}",
            fulfils=request,
        )
    except InvalidState as exc:
        reason = f"Not extended: {exc} It was approved too late; restore the resource instead once it is reclaimed."
        with transaction.atomic():
            request = ResourceRequest.objects.select_for_update().get(pk=request_id)
            if request.state == RequestState.APPROVED:
                transition_apply(request, "fail", actor=None, verb="failed", detail=reason, reason=reason)


def extensions_sweep(*, older_than: timedelta = timedelta(minutes=1)) -> list[str]:
    """Approved extend requests whose task was lost (broker restart, worker killed): enqueued again."""
    from ..tasks import fulfil_extension

    cutoff = timezone.now() - older_than
    stuck = [
        (str(pk), cluster_id)
        for pk, cluster_id in ResourceRequest.objects.filter(
            action=Action.EXTEND, state=RequestState.APPROVED, updated_at__lt=cutoff
        ).values_list("pk", "cluster_id")[:200]
    ]
    for request_id, cluster_id in stuck:
        publish(fulfil_extension, request_id, cluster_id=cluster_id)
    return [request_id for request_id, _ in stuck]


def publish(task, *args, cluster_id: int | None = None) -> None:
    """Send a task, on the queue of the cluster it calls (`cluster_id`; None: Celery's default queue);
    when the broker is down, the sweeps send it again later."""
    from provisioning.queues import queue_name

    try:
        queue = queue_name(cluster.target_by_pk(cluster_id).name) if cluster_id is not None else None
        task.apply_async(args, queue=queue)
    except Exception:  # any broker failure: the database still says what is due
        log.warning("could not enqueue %s%s; a sweep will", task.name, args, exc_info=True)
