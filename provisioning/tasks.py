"""Celery entry points for provisioning: take ids, call one service.

Delivery is at least once (acks_late, reject_on_worker_lost, prefetch 1: see config/settings.py), so
every task here is idempotent: provisioning claims the request and re-reads it, the sweep and the
reconcile converge. What a task cannot finish, the database still records, and the periodic sweep
picks it up again.
"""

from __future__ import annotations

import logging

from billiard.exceptions import WorkerLostError
from celery import Task, shared_task
from celery.exceptions import SoftTimeLimitExceeded
from celery.signals import worker_init, worker_ready
from django.conf import settings
from django.db import InterfaceError, OperationalError
from kombu.exceptions import OperationalError as BrokerError

from requests_app import logs
from requests_app.errors import InvalidState
from requests_app.models import Cluster, ResourceRequest

from . import cluster, metrics
from .errors import ClaimLost, PermanentClusterError, TransientClusterError
from .queues import queue_name
from .services.health import clusters_check
from .services.plan import resource_id_for
from .services.provision import request_provision
from .services.reconcile import resources_reconcile
from .services.retries import provisioning_retry_later, request_fail, retry_delay
from .services.sweep import CLUSTER_ID_HEADER, RESOURCE_ID_HEADER, provisioning_sweep

log = logging.getLogger(__name__)

# Failures that say nothing about the request: the database or the broker was unreachable, or the
# worker died. The request stays approved/provisioning and the sweep enqueues it again.
LEFT_TO_THE_SWEEP = (OperationalError, InterfaceError, BrokerError, WorkerLostError, TransientClusterError)


class ProvisionTask(Task):
    """Records the reason on the request when the task fails for a reason that is the request's."""

    def on_failure(self, exc, task_id, args, kwargs, einfo) -> None:
        request_id = kwargs.get("request_id") or (args[0] if args else None)
        if not request_id:
            return
        if isinstance(exc, LEFT_TO_THE_SWEEP):
            log.warning("provisioning of %s stopped (%s); the sweep enqueues it again", request_id, exc)
            return
        request_fail(request_id=request_id, reason=f"{exc.__class__.__name__}: {exc}")


@shared_task(bind=True, base=ProvisionTask, acks_late=True, reject_on_worker_lost=True, max_retries=None)
def provision_request(self, request_id: str) -> None:
    """Create an approved request's objects in Kubernetes.

    Transient API errors retry with exponential backoff and jitter (honouring Retry-After), bounded by
    LEASEHOLD_MAX_DELIVERIES; permanent ones (403, 422, invalid spec) fail the request at once.
    The message's RESOURCE_ID_HEADER (the publisher knows it; a retry keeps it) names the resource on
    the run's log lines; without it (a message from before it was sent) the request is read for it.
    """
    metrics.PROVISIONING_ATTEMPTS.inc()
    headers = self.request.headers or {}
    logs.annotate(resource_id=headers.get(RESOURCE_ID_HEADER) or _resource_id(request_id))
    cluster_id = headers.get(CLUSTER_ID_HEADER)
    _provision(self, request_id, cluster_id if isinstance(cluster_id, int) else None)


def _provision(task: Task, request_id: str, cluster_id: int | None = None) -> None:
    try:
        outcome = request_provision(request_id=request_id, cluster_id=cluster_id)
    except (TransientClusterError, SoftTimeLimitExceeded) as exc:
        delay = provisioning_retry_later(request_id=request_id, error=exc)
        if delay is None:
            return
        metrics.PROVISIONING_RETRIES.labels(metrics.failure_reason(exc)).inc()
        raise task.retry(countdown=delay, exc=exc) from exc
    except (PermanentClusterError, InvalidState) as exc:
        request_fail(request_id=request_id, reason=str(exc))
        return
    except ClaimLost:
        return
    except (OperationalError, InterfaceError) as exc:
        # The database went away: nothing can be recorded now. Try again later; the sweep is the backstop.
        delay = retry_delay(task.request.retries + 1)
        metrics.PROVISIONING_RETRIES.labels("database").inc()
        raise task.retry(countdown=delay, exc=exc, max_retries=settings.LEASEHOLD_MAX_DELIVERIES) from exc
    if outcome.retry_in is not None:
        raise task.retry(countdown=outcome.retry_in)


def _resource_id(request_id: str) -> str:
    """The id of the resource the request makes or changes, for the log lines of its provisioning."""
    try:
        request = ResourceRequest.objects.filter(pk=request_id).only("action", "resource_id").first()
    except (OperationalError, InterfaceError):
        return ""  # the run finds out again, and retries
    return str(resource_id_for(request)) if request is not None else ""


@shared_task(acks_late=True)
def sweep_stuck_requests() -> list[str]:
    """Re-enqueue requests whose provisioning message was lost (see services.sweep.provisioning_sweep)."""
    return provisioning_sweep()


@worker_init.connect(dispatch_uid="provisioning.load_cluster_client")
def load_cluster_client(**kwargs) -> None:
    """A worker talks to the cluster: its main process imports the client before the pool starts, so
    that the pool's processes share it and their first task does not wait for the import."""
    cluster.load_client()


@worker_ready.connect(dispatch_uid="provisioning.sweep_on_start")
def sweep_when_a_worker_starts(sender, **kwargs) -> None:
    """A worker that starts (after a crash, a node loss, a deploy) sweeps at once, not at the next beat."""
    try:
        sweep_stuck_requests.delay()
    except BrokerError:
        log.warning("could not enqueue the start-up sweep; beat runs it soon", exc_info=True)


@shared_task(acks_late=True)
def reconcile_resources() -> list[str]:
    """The periodic reconcile: one `reconcile_cluster` per registered cluster, each on that cluster's
    queue, so that a slow or unreachable cluster delays only its own. Returns the clusters published."""
    names = list(Cluster.objects.order_by("name").values_list("name", flat=True))
    for name in names:
        reconcile_cluster.apply_async((name,), queue=queue_name(name))
    return names


@shared_task(acks_late=True)
def reconcile_cluster(cluster_name: str) -> dict:
    """Converge one cluster's active resources and finish the teardown of its failed ones."""
    report = resources_reconcile(cluster_name=cluster_name)
    return {
        "checked": report.checked,
        "findings": report.findings,
        "errors": report.errors,
        "outcomes": report.counts(),  # by each entry's outcome
    }


@shared_task(acks_late=True)
def check_clusters() -> dict:
    """Check every registered cluster and record its health (services.health.clusters_check). Beat runs it
    every LEASEHOLD_CLUSTER_CHECK_SECONDS on the default queue: it must run while any one cluster's queue is
    stuck behind that cluster's outage."""
    results = clusters_check()
    return {"checked": len(results), "unhealthy": [r.name for r in results if not r.healthy]}
