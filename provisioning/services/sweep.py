"""Enqueueing provisioning runs, and the sweep that re-enqueues requests whose message was lost."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from requests_app.models import RequestState, ResourceRequest
from requests_app.services import audit_record

from .. import cluster
from ..models import Phase, ProvisioningJob
from ..queues import queue_name
from .claims import claim_alive
from .plan import PROVISIONED_ACTIONS, resource_id_for

log = logging.getLogger(__name__)


# A message header, not an argument: a worker from before it ignores a header, where an argument it does
# not take would fail the task.
RESOURCE_ID_HEADER = "leasehold_resource_id"
# The request's cluster (its id): the run starts on it without reading the request for it first.
CLUSTER_ID_HEADER = "leasehold_cluster_id"


def _publish(request_id: str, resource_id: str, cluster_id: int) -> None:
    from ..tasks import provision_request

    try:
        # On its cluster's queue. The resource's id rides along for the run's log lines, the cluster's
        # for the run: the task need not read the request for them.
        provision_request.apply_async(
            (request_id,),
            headers={RESOURCE_ID_HEADER: resource_id, CLUSTER_ID_HEADER: cluster_id},
            queue=queue_name(cluster.target_by_pk(cluster_id).name),
        )
    except Exception:  # the broker is down: the sweep re-enqueues the request later
        log.warning("could not enqueue provisioning of %s; the sweep will", request_id, exc_info=True)


def provisioning_enqueue(*, request: ResourceRequest, reset: bool = False) -> None:
    """Record that the request is due for provisioning and publish its task after commit.

    The database is the source of truth: if the message is lost (broker down, worker killed before
    the ack), `provisioning_sweep` finds the request by `enqueued_at` and publishes it again.
    """
    defaults: dict = {"enqueued_at": timezone.now()}
    if reset:
        defaults.update(
            phase=Phase.QUEUED,
            retry_at=None,
            ready_deadline=None,
            last_error="",
            claim_token=None,
            claimed_until=None,
            claimed_by="",
        )
    # One upsert (INSERT ... ON CONFLICT DO UPDATE): no read, no savepoints, on every approval.
    ProvisioningJob.objects.bulk_create(
        [ProvisioningJob(request_id=request.pk, **defaults)],
        update_conflicts=True,
        unique_fields=["request"],
        update_fields=[*defaults, "updated_at"],
    )
    request_id, resource_id = str(request.pk), str(resource_id_for(request))
    cluster_id = request.cluster_id
    transaction.on_commit(lambda: _publish(request_id, resource_id, cluster_id))


def _dead_claims(now) -> list:
    """Requests whose claim has not run out but whose worker is gone: its database session no longer
    exists (a worker killed with -9, a node lost). They are stuck at once, not after the claim runs out."""
    if connection.vendor != "postgresql":
        return []
    held = list(
        ProvisioningJob.objects.filter(
            claimed_until__gt=now,
            claimed_by__startswith="pg:",
            request__state__in=(RequestState.APPROVED, RequestState.PROVISIONING),
        ).values_list("pk", "claimed_by")
    )
    if not held:
        return []
    with connection.cursor() as cursor:
        cursor.execute("SELECT pid FROM pg_stat_activity")
        live = {row[0] for row in cursor.fetchall()}
    return [pk for pk, by in held if int(by[3:].split("@", 1)[0]) not in live]


def provisioning_sweep(*, cluster_name: str | None = None) -> list[str]:
    """Re-enqueue requests stuck in approved or provisioning, exactly once per stuck spell:
    - a claim whose worker is gone (its database session ended): at once;
    - no live claim, no retry due, and nothing enqueued for LEASEHOLD_PROVISION_STUCK_MINUTES (a message
      lost with the broker, or never published).
    Requests on a cluster the health check found down are left alone: they wait for it (see
    `provisioning_resume`). `cluster_name` limits the sweep to one cluster's requests.
    Runs every LEASEHOLD_SWEEP_SECONDS and when a worker starts. Safe to run anywhere, any number of times
    at once (compare-and-set on the claim and `enqueued_at`). Returns the ids it re-enqueued."""
    now = timezone.now()
    cutoff = now - timedelta(minutes=settings.LEASEHOLD_PROVISION_STUCK_MINUTES)
    dead = _dead_claims(now)
    live = ResourceRequest.objects.filter(
        action__in=PROVISIONED_ACTIONS, state__in=(RequestState.APPROVED, RequestState.PROVISIONING)
    ).exclude(cluster__healthy=False)
    if cluster_name is not None:
        live = live.filter(cluster__name=cluster_name)
        dead = list(live.filter(pk__in=dead).values_list("pk", flat=True)) if dead else []
    idle = (
        live.filter(
            Q(provisioning_job__isnull=True, updated_at__lt=cutoff)
            | Q(provisioning_job__enqueued_at__isnull=True, updated_at__lt=cutoff)
            | Q(provisioning_job__enqueued_at__lt=cutoff)
        )
        .exclude(provisioning_job__retry_at__gte=cutoff)
        .order_by("updated_at")
        .values_list("pk", flat=True)[: settings.LEASEHOLD_SWEEP_MAX_PER_RUN]
    )
    requeued = []
    for request_id in [*dead, *(pk for pk in idle if pk not in dead)]:
        with transaction.atomic():
            job, _ = ProvisioningJob.objects.get_or_create(request_id=request_id)
            if claim_alive(job):
                continue
            gone = job.claimed_until is not None and job.claimed_until > now
            taken = (
                ProvisioningJob.objects.filter(pk=request_id, claim_token=job.claim_token)
                .filter(Q(enqueued_at__isnull=True) | Q(enqueued_at__lt=cutoff) | Q(claimed_until__gt=now))
                .update(enqueued_at=now, claim_token=None, claimed_until=None, claimed_by="")
            )
            if not taken:
                continue
            request = ResourceRequest.objects.get(pk=request_id)
            why = (
                f"its worker ({job.claimed_by}) is gone"
                if gone
                else f"no progress for {settings.LEASEHOLD_PROVISION_STUCK_MINUTES:g} min"
            )
            audit_record(actor=None, verb="requeued", target=request, detail=f"{why}; enqueued again")
            ids = (str(request_id), str(resource_id_for(request)), request.cluster_id)
            transaction.on_commit(lambda ids=ids: _publish(*ids))  # type: ignore[misc]
        requeued.append(str(request_id))
    return requeued


def provisioning_resume(*, cluster_name: str) -> list[str]:
    """Enqueue the requests that wait for `cluster_name` (phase WAITING_CLUSTER) now that it answers
    again: at once, not at the sweep's next idle cutoff. Compare-and-set on the phase, so two health
    checks that both saw it recover enqueue each request once. Returns the ids it enqueued."""
    waiting = ProvisioningJob.objects.filter(
        phase=Phase.WAITING_CLUSTER,
        request__cluster__name=cluster_name,
        request__state__in=(RequestState.APPROVED, RequestState.PROVISIONING),
    ).values_list("pk", flat=True)
    resumed = []
    for request_id in list(waiting):
        with transaction.atomic():
            now = timezone.now()
            taken = ProvisioningJob.objects.filter(pk=request_id, phase=Phase.WAITING_CLUSTER).update(
                phase=Phase.QUEUED, enqueued_at=now, last_error=""
            )
            if not taken:
                continue
            request = ResourceRequest.objects.get(pk=request_id)
            audit_record(actor=None, verb="requeued", target=request, detail=f"cluster {cluster_name} answers again")
            ids = (str(request_id), str(resource_id_for(request)), request.cluster_id)
            transaction.on_commit(lambda ids=ids: _publish(*ids))  # type: ignore[misc]
        resumed.append(str(request_id))
    return resumed
