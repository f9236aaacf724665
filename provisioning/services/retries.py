"""The retry policy of provisioning, and failing a request that cannot finish."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from requests_app.models import Action, RequestState, ResourceRequest, ResourceState
from requests_app.services import audit_record, transition_apply

from .. import cluster
from ..errors import ClusterError, TransientClusterError
from ..models import Phase, ProvisioningJob
from .teardown import resource_teardown

log = logging.getLogger(__name__)


def retry_delay(attempt: int, retry_after: float | None = None) -> float:
    """Exponential backoff with jitter for the `attempt`-th retry (from 1), at least `Retry-After`,
    at most LEASEHOLD_RETRY_BACKOFF_MAX_SECONDS."""
    return cluster.backoff_delay(
        max(0, attempt - 1),
        base=settings.LEASEHOLD_RETRY_BACKOFF_SECONDS,
        cap=settings.LEASEHOLD_RETRY_BACKOFF_MAX_SECONDS,
        spread=0.5,
        at_least=retry_after or 0,
    )


def provisioning_retry_later(*, request_id, error: Exception) -> float | None:
    """After a transient failure: the seconds until the next attempt (recorded, so the sweep leaves the
    request alone meanwhile); None when the request now waits for its cluster (the cluster does not
    answer at all: `provisioning_wait_for_cluster`) or the attempts are used up and it was failed."""
    reason = str(error) or error.__class__.__name__
    if isinstance(error, TransientClusterError):
        cluster_id = ResourceRequest.objects.filter(pk=request_id).values_list("cluster_id", flat=True).first()
        try:
            with cluster.using(cluster.target_by_pk(cluster_id)):
                cluster.ping()
        except ClusterError as down:
            provisioning_wait_for_cluster(
                request_id=request_id, reason=f"{reason} (and /readyz: {down})", attempted=True
            )
            return None
    with transaction.atomic():
        request = ResourceRequest.objects.select_for_update().filter(pk=request_id).first()
        if request is None or request.state not in (RequestState.APPROVED, RequestState.PROVISIONING):
            return None
        exhausted = request.deliveries >= settings.LEASEHOLD_MAX_DELIVERIES
        if not exhausted:
            delay = retry_delay(request.deliveries, getattr(error, "retry_after", None))
            now = timezone.now()
            ProvisioningJob.objects.update_or_create(
                request=request,
                defaults={
                    "phase": Phase.RETRYING,
                    "retry_at": now + timedelta(seconds=delay),
                    "enqueued_at": now,
                    "last_error": reason,
                },
            )
            audit_record(actor=None, verb="retry_scheduled", target=request, detail=f"in {delay:.1f}s after: {reason}")
            return delay
    request_fail(
        request_id=request_id,
        reason=f"Gave up after {request.deliveries} attempts; the last error was: {reason}",
    )
    return None


def provisioning_wait_for_cluster(*, request_id, reason: str, attempted: bool = False) -> bool:
    """Park a request whose cluster does not answer: phase WAITING_CLUSTER with the reason (what its page
    and the API show), no retry scheduled and no attempt counted against LEASEHOLD_MAX_DELIVERIES (an
    attempt that could not reach the cluster says nothing about the request: `attempted` gives back the
    one its claim counted). `provisioning_resume` enqueues it when the health check sees the cluster
    answer again, and the sweep is the backstop. Audited once per wait. False when it is not waiting
    (it was finished, failed or cancelled meanwhile)."""
    with transaction.atomic():
        request = ResourceRequest.objects.select_for_update().filter(pk=request_id).first()
        if request is None or request.state not in (RequestState.APPROVED, RequestState.PROVISIONING):
            return False
        if attempted and request.deliveries > 0:
            ResourceRequest.objects.filter(pk=request.pk).update(deliveries=F("deliveries") - 1)
        job, _ = ProvisioningJob.objects.get_or_create(request=request)
        started = job.phase != Phase.WAITING_CLUSTER
        ProvisioningJob.objects.filter(pk=job.pk).update(
            phase=Phase.WAITING_CLUSTER,
            retry_at=None,
            enqueued_at=timezone.now(),
            last_error=reason[:2000],
            claim_token=None,
            claimed_until=None,
            claimed_by="",
        )
        if started:
            audit_record(actor=None, verb="waiting_for_cluster", target=request, detail=reason[:500])
    return True


def request_fail(*, request_id, reason: str) -> None:
    """Mark a request (and its resource) failed with the reason, and remove what was applied."""
    with transaction.atomic():
        request = ResourceRequest.objects.select_for_update().filter(pk=request_id).first()
        if request is None or request.state not in (RequestState.APPROVED, RequestState.PROVISIONING):
            return
        resource = request.resource
        transition_apply(request, "fail", actor=None, verb="failed", detail=reason, reason=reason)
        if resource is not None and resource.state == ResourceState.PROVISIONING:
            transition_apply(resource, "fail", actor=None, verb="failed", detail=reason, request=request)
        ProvisioningJob.objects.update_or_create(
            request=request,
            defaults={
                "phase": Phase.FAILED,
                "last_error": reason,
                "claim_token": None,
                "claimed_until": None,
                "claimed_by": "",
            },
        )
    # A failed upgrade or rollback leaves the running app alone (retry it, or roll back).
    if resource is not None and request.action == Action.CREATE:
        try:
            with cluster.using(cluster.target_by_pk(resource.cluster_id)):
                resource_teardown(resource=resource)
        except ClusterError:
            # The periodic reconcile finishes the teardown of failed resources.
            log.exception("could not remove the objects of failed resource %s yet", resource.pk)
