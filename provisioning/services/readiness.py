"""Readiness and activation: what is not available yet, and the resource made active once it all is."""

from __future__ import annotations

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from requests_app.batch import write_batch
from requests_app.errors import InvalidState
from requests_app.models import Action, Kind, Resource, ResourceRequest
from requests_app.services import audit_record, transition_apply

from .. import cluster
from ..errors import PermanentClusterError
from ..kinds import PROVISIONING_KINDS
from ..models import ManagedObject, Phase
from .apply import _is_namespace, _read_all, _row_ref
from .claims import Claim, _renew
from .releases import _record_release


def workload_unready(live: dict | None) -> str:
    """Why a Deployment or StatefulSet is not available yet; empty when it is."""
    if live is None:
        return "does not exist"
    meta, spec, status = live.get("metadata") or {}, live.get("spec") or {}, live.get("status") or {}
    want = spec.get("replicas", 1)
    if status.get("observedGeneration", 0) < meta.get("generation", 1):
        return "its latest spec is not observed yet"
    have = status.get("availableReplicas" if live.get("kind") == "Deployment" else "readyReplicas") or 0
    if have < want:
        return f"{have}/{want} replicas available"
    return ""


def _unready(claim: Claim, stored: dict[cluster.ObjectRef, dict]) -> tuple[list[str], int]:
    """What is not ready yet, and how many objects the resource has; marks the objects that are (see
    _readiness)."""
    waiting, count, ready = _readiness(claim, stored)
    if ready:
        ManagedObject.objects.filter(pk__in=ready).update(ready_at=timezone.now())
    return waiting, count


def _readiness(claim: Claim, stored: dict[cluster.ObjectRef, dict]) -> tuple[list[str], int, list[int]]:
    """What is not ready yet, how many objects the resource has, and the ids of the rows that are ready
    now but not marked so (the caller marks them). The namespace must be Active; with
    LEASEHOLD_WAIT_FOR_READY, Deployments and StatefulSets must be available too.

    `stored` holds this run's apply answers, as fresh as a read: the objects in it are not read again
    (a Namespace the run applied says its phase; a workload it just applied is not available yet).
    """
    resource = claim.resource
    waiting: list[str] = []
    ns_name = resource.namespace_name
    ns_ref = cluster.ObjectRef("v1", "Namespace", "", ns_name)
    ns = stored[ns_ref] if ns_ref in stored else cluster.read(ns_ref)
    if ns is None:
        raise PermanentClusterError(f"Namespace {ns_name} does not exist (deleted while provisioning?).")
    ns_phase = (ns.get("status") or {}).get("phase")
    if ns_phase != "Active":
        waiting.append(f"Namespace {ns_name} is {ns_phase or 'not active yet'}")
    # A resource made by this run has exactly the rows its claim recorded: no read back.
    present = (
        list(claim.rows.values())
        if claim.rows is not None
        else list(resource.managed_objects.filter(deleted_at__isnull=True))
    )
    rows = [
        row for row in present if row.ready_at is None and not (_is_namespace(_row_ref(row)) and ns_phase != "Active")
    ]
    waited_for = PROVISIONING_KINDS.get(resource.kind).workloads
    workloads = [row for row in rows if settings.LEASEHOLD_WAIT_FOR_READY and row.kind in waited_for]
    unread = [_row_ref(row) for row in workloads if _row_ref(row) not in stored]
    live = {**stored, **_read_all(unread)}
    ready = []
    for row in rows:
        why = workload_unready(live.get(_row_ref(row))) if row in workloads else ""
        if why:
            waiting.append(f"{row}: {why}")
        else:
            ready.append(row.pk)
    return waiting, len(present), ready


@transaction.atomic
def _activate(claim: Claim, *, count: int) -> None:
    """Mark request and resource active (`count`: the resource's objects, for the audit trail) and give
    the claim up in the same transaction; ClaimLost (and nothing changed) when another worker took it.

    No read of the two rows first: the claim read them under its row lock, and only the claim's holder
    changes them while it holds it. Each state change is a compare-and-set on the state that writes only
    the columns it changed (transition_apply(changed=...)), and the claim's own update, last, proves the
    claim was still held. A request or resource whose state someone else changed meanwhile (an admin
    failed it, say) is left as it is: the transaction rolls back and the run ends."""
    try:
        # The lease (opened by leases' receiver of the resource's activation), both state changes, their
        # audit rows and the claim's release: one statement on PostgreSQL.
        with write_batch():
            _activate_changes(claim.request, claim.resource, count=count)
            _renew(claim, release=True, phase=Phase.DONE, last_error="")
    except InvalidState:
        transaction.set_rollback(True)
        return


def _activate_changes(request: ResourceRequest, resource: Resource, *, count: int) -> None:
    """The state changes of an activation (see `_activate`)."""
    if resource.created_by_request_id == request.pk:
        resource.created_by_request = request  # the same row, locked above: the lease's audit needs it
    if request.action == Action.CREATE:
        transition_apply(
            resource, "activate", actor=None, verb="activated", request=request, detail=f"{count} objects", changed=[]
        )
    if resource.kind == Kind.APP:
        release = _record_release(request, resource)
        if request.action != Action.CREATE:
            Resource.objects.filter(pk=resource.pk).update(spec=release.spec)
            audit_record(
                actor=None,
                verb=f"{request.action}d" if request.action == Action.UPGRADE else "rolled_back",
                target=resource,
                request=request,
                detail=f"release {release.number}: image tag {release.image_tag}"
                + (f" (as release {release.rolled_back_from})" if release.rolled_back_from else ""),
            )
    transition_apply(request, "activate", actor=None, verb="activated", resource=resource, changed=[])
