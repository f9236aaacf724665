"""The worker's claim on a request: who holds it, for how long, and giving it up."""

from __future__ import annotations

import os
import socket
import threading
import uuid
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from requests_app.batch import batch_insert, batch_update, batch_update_fields, write_batch
from requests_app.errors import InvalidState
from requests_app.models import Action, Cluster, RequestState, Resource, ResourceRequest, ResourceState
from requests_app.services import transition_apply

from .. import cluster
from ..errors import ClaimLost
from ..models import ManagedObject, Phase, ProvisioningJob
from .apply import _record_intent_of_new, _render_new
from .plan import PROVISIONED_ACTIONS, resource_id_for


class DeliveriesExhausted(Exception):
    """The request was delivered LEASEHOLD_MAX_DELIVERIES times without finishing: it is failed."""


class NotHere(Exception):
    """The request is not for the cluster of the context (`cluster.using`), or its cluster is known to be
    down: nothing was claimed or called. `cluster` is the request's Cluster row."""

    def __init__(self, cluster: Cluster) -> None:
        super().__init__(cluster.name)
        self.cluster = cluster


@dataclass
class Claim:
    """A worker's hold on one request's provisioning, renewed after every step."""

    request: ResourceRequest
    resource: Resource
    job: ProvisioningJob
    token: uuid.UUID
    # For a resource made by this claim: its manifests, and the rows recorded for them in the claim's
    # transaction (None: the run renders and records them itself).
    manifests: list[dict] | None = None
    rows: dict[cluster.ObjectRef, ManagedObject] | None = None
    # Reads of its objects started before the apply (while the claim's transaction ran): the apply
    # takes their answers instead of reading again.
    ahead: dict[cluster.ObjectRef, cluster.Ahead] = field(default_factory=dict)
    # The claim was given up already (with the run's last write): nothing left to release.
    released: bool = False


def _claim_seconds() -> timedelta:
    return timedelta(seconds=settings.LEASEHOLD_PROVISION_CLAIM_SECONDS)


def _session_identity() -> str:
    """This worker's database session, host, process and thread: who holds a claim."""
    where = f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"
    if connection.vendor == "postgresql":
        # psycopg knows the backend's pid from the connection's start: no query for it.
        connection.ensure_connection()
        return f"pg:{connection.connection.info.backend_pid}@{where}"
    return f"proc@{where}"


def claim_alive(job: ProvisioningJob, *, me: str | None = None) -> bool:
    """Whether another worker still holds the job: its claim has not run out and, on PostgreSQL, its
    database session still exists (a worker killed with -9 loses its session at once). The same
    session as ours cannot be running another provisioning of it: its earlier run is over."""
    if job.claimed_until is None or job.claimed_until <= timezone.now():
        return False
    if me is not None and job.claimed_by == me:
        return False
    if job.claimed_by.startswith("pg:") and connection.vendor == "postgresql":
        backend = job.claimed_by[3:].split("@", 1)[0]
        with connection.cursor() as cursor:
            cursor.execute("SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = %s)", [int(backend)])
            return bool(cursor.fetchone()[0])
    return True


def _locked(request_id) -> tuple[ResourceRequest | None, ProvisioningJob | None]:
    """The request and its job, both locked, in one query; the job None when it has none yet (the
    enqueue makes it, so only a request enqueued some other way, which the caller then gives one).

    Locks the request and job rows only (`of`): the team and requester rows are shared by many requests,
    and locking them too would serialise every worker provisioning that team's or that person's
    requests. What rendering reads of every request (team and group, requester) and the cluster's row
    come in the same query; the resource and the parent, which only some requests have, are read when
    there is one (a join for them cost every run more to plan than the read costs the runs that need
    it). The condition on the job makes its join an inner one (PostgreSQL locks no row on the nullable
    side of an outer join): without a job the request is read and locked again on its own. No ordering:
    the key finds one row."""
    rendering = ("team__group", "requester", "cluster")
    found = list(
        ResourceRequest.objects.select_for_update(of=("self", "provisioning_job"))
        .select_related(*rendering, "provisioning_job")
        .filter(pk=request_id, provisioning_job__isnull=False)
        .order_by()[:1]
    )
    if found:
        return found[0], found[0].provisioning_job
    found = list(
        ResourceRequest.objects.select_for_update(of=("self",))
        .select_related(*rendering)
        .filter(pk=request_id)
        .order_by()[:1]
    )
    return (found[0] if found else None), None


@transaction.atomic
def _claim(request_id) -> Claim | None:
    """Take the request for this worker: a row lock, a re-read of the state, a claim that runs out.

    Moves an approved request to provisioning (creating its resource), or picks up one in progress.
    Returns None when there is nothing to do (done, no longer wanted, or another worker holds it).
    Every claim except a readiness re-check counts as one delivery; raises DeliveriesExhausted when
    the request has had LEASEHOLD_MAX_DELIVERIES of them already.
    """
    request, job = _locked(request_id)
    if (
        request is None
        or request.action not in PROVISIONED_ACTIONS
        or request.state not in (RequestState.APPROVED, RequestState.PROVISIONING)
    ):
        return None
    if request.cluster.name != cluster.current().name or request.cluster.healthy is False:
        raise NotHere(request.cluster)
    if job is None:
        job, _ = ProvisioningJob.objects.select_for_update().get_or_create(request=request)
    now = timezone.now()
    me = _session_identity()
    if claim_alive(job, me=me):
        return None
    if job.phase != Phase.READINESS:
        if request.deliveries >= settings.LEASEHOLD_MAX_DELIVERIES:
            last = job.last_error or "the worker was lost while provisioning"
            raise DeliveriesExhausted(
                f"Stopped after {request.deliveries} deliveries without finishing (last error: {last})."
            )
        request.deliveries += 1
        if request.state != RequestState.APPROVED:
            # An approved request is saved by its transition below, deliveries with it.
            ResourceRequest.objects.filter(pk=request.pk).update(deliveries=F("deliveries") + 1)
    token = job.claim_token = uuid.uuid4()
    job.claimed_until = now + _claim_seconds()
    job.claimed_by = me
    job.retry_at = None
    if job.phase not in (Phase.READINESS,):
        job.phase = Phase.APPLYING
    # The claim's writes (the job, a new resource and its object rows, the request's state change, its
    # audit row) go in one statement on PostgreSQL as the block ends.
    with write_batch():
        batch_update_fields(job, ["claim_token", "claimed_until", "claimed_by", "retry_at", "phase", "updated_at"])
        return _claim_request(request, job, token, now)


def _claim_request(request: ResourceRequest, job: ProvisioningJob, token: uuid.UUID, now) -> Claim | None:
    if request.state == RequestState.APPROVED and request.action != Action.CREATE:
        # An upgrade or rollback changes a running app: it must still be active.
        if request.resource is None or request.resource.state != ResourceState.ACTIVE:
            state = request.resource.state if request.resource else "gone"
            raise InvalidState(f"The app is {state}; only an active app can be changed.")
        transition_apply(request, "start_provisioning", actor=None, verb="provisioning_started", changed=["deliveries"])
        return Claim(request, request.resource, job, token)
    if request.state == RequestState.APPROVED:
        # The claim that makes the resource links it to the request in the same transaction, under the
        # request's row lock: an approved request without one has none yet (no read, no savepoint).
        made = request.resource is None
        resource = request.resource or Resource(
            pk=resource_id_for(request),
            kind=request.kind,
            name=request.name,
            team=request.team,
            owner=request.requester,
            environment=request.environment,
            spec=request.spec,
            lease_days=request.lease_days,
            created_by_request=request,
            parent=request.parent,
            cluster_id=request.cluster_id,
            activated_at=now,
        )
        claim = Claim(request, resource, job, token)
        if made:
            # Rendered before the writes below, so that the read of its Namespace (see
            # _render_new) runs while they do.
            _render_new(claim)
            batch_insert(resource)
        request.resource = resource
        transition_apply(
            request, "start_provisioning", actor=None, verb="provisioning_started", changed=["deliveries", "resource"]
        )
        if made:
            _record_intent_of_new(claim)
        return claim
    if request.resource is None:
        return None
    return Claim(request, request.resource, job, token)


def _renew(claim: Claim, *, release: bool = False, **fields) -> None:
    """Extend the claim (and save `fields` on the job); ClaimLost when another worker took it over.
    With `release`, the same write gives the claim up instead (the run's last write: one update)."""
    held = {"claim_token": None, "claimed_until": None, "claimed_by": ""} if release else {}

    def renewed() -> None:
        for name, value in fields.items():
            setattr(claim.job, name, value)

    batch_update(  # inside a write_batch(), sent with its other writes
        ProvisioningJob.objects.filter(pk=claim.job.pk, claim_token=claim.token),
        {"claimed_until": timezone.now() + _claim_seconds(), **held, "updated_at": timezone.now(), **fields},
        on_miss=lambda: ClaimLost(f"the claim on request {claim.request.pk} ran out and was taken over"),
        done=renewed,
    )


def _release(claim: Claim) -> None:
    if claim.released:
        return
    ProvisioningJob.objects.filter(pk=claim.job.pk, claim_token=claim.token).update(
        claim_token=None, claimed_until=None, claimed_by=""
    )
