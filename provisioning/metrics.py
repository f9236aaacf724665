"""Metrics of provisioning and of the Kubernetes API calls (README "Metrics and alerts").

The counters are events, counted in the process that makes them (the worker, or the web process with
the embedded defaults); a failure's `reason` is a fixed category (`failure_reason`), never free text.
`ClustersCollector` reads each cluster's health, committed quota and capacity from the database when
/metrics is scraped (config/metrics.py), as the health check last recorded them.
"""

from __future__ import annotations

import functools
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from billiard.exceptions import WorkerLostError
from celery.exceptions import SoftTimeLimitExceeded
from django.db import DatabaseError
from django.dispatch import receiver
from django_fsm.signals import post_transition
from prometheus_client import Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric

from requests_app.errors import InvalidState
from requests_app.metrics import after_commit
from requests_app.models import Cluster, RequestState, ResourceRequest

from .errors import ClusterError, PermanentClusterError

F = TypeVar("F", bound=Callable[..., Any])

API_REQUESTS = Counter("leasehold_kubernetes_api_requests_total", "Calls to the Kubernetes API, by verb.", ["verb"])
API_ERRORS = Counter(
    "leasehold_kubernetes_api_errors_total",
    "Kubernetes API calls that failed, by verb and HTTP status ('none': no answer: timeout, connection).",
    ["verb", "status"],
)
API_DURATION = Histogram(
    "leasehold_kubernetes_api_request_duration_seconds", "Time for one Kubernetes API call, by verb.", ["verb"]
)
PROVISIONING_ATTEMPTS = Counter(
    "leasehold_provisioning_attempts_total", "Provisioning task runs (first deliveries, retries and readiness checks)."
)
PROVISIONING_RETRIES = Counter(
    "leasehold_provisioning_retries_total", "Provisioning runs that will be retried later, by reason.", ["reason"]
)
PROVISIONING_FAILURES = Counter(
    "leasehold_provisioning_failures_total", "Requests whose provisioning failed, by reason.", ["reason"]
)

# The failure reasons, a fixed set (see failure_reason).
REASONS = (
    "forbidden",  # 403: the service's RBAC does not allow it
    "not_found",  # 404
    "conflict",  # 409
    "invalid",  # 400, 422: the API server refused the object
    "rejected",  # another 4xx
    "refused",  # Leasehold refused: the object belongs to someone else, a kind the cluster does not serve
    "not_ready",  # not ready within LEASEHOLD_READY_TIMEOUT_SECONDS
    "unavailable",  # transient: 429, 5xx, timeouts, connections (retried until the attempts ran out)
    "attempts_exhausted",  # LEASEHOLD_MAX_DELIVERIES deliveries without finishing (the worker kept dying)
    "timeout",  # the task's time limit
    "invalid_state",  # e.g. an upgrade of an app that is no longer active
    "database",  # the database could not be reached
    "worker_lost",
    "error",  # anything else (a bug: see the log)
)
_STATUS_REASONS = {400: "invalid", 403: "forbidden", 404: "not_found", 409: "conflict", 422: "invalid"}


def failure_reason(exc: BaseException | None) -> str:
    """The category of an error that failed or postponed provisioning (one of REASONS)."""
    if isinstance(exc, PermanentClusterError):
        if exc.status is not None:
            return _STATUS_REASONS.get(exc.status, "rejected")
        return "not_ready" if str(exc).startswith("Not ready within") else "refused"
    if isinstance(exc, ClusterError):
        return "unavailable"
    if isinstance(exc, SoftTimeLimitExceeded):
        return "timeout"
    if isinstance(exc, InvalidState):
        return "invalid_state"
    if isinstance(exc, DatabaseError):
        return "database"
    if isinstance(exc, WorkerLostError):
        return "worker_lost"
    from .services.claims import DeliveriesExhausted  # services call the cluster, which imports this module

    if isinstance(exc, DeliveriesExhausted):
        return "attempts_exhausted"
    return "error"


@receiver(post_transition, sender=ResourceRequest, dispatch_uid="provisioning.metrics.failed")
def count_failure(sender, instance: ResourceRequest, target: str, **kwargs) -> None:
    """Every provisioning failure moves its request to `failed` once, wherever it was decided (the task,
    the attempts running out, a worker that kept dying). The reason is that of the exception being
    handled when the request was failed: each of those places fails it from inside its `except`."""
    if target != RequestState.FAILED:
        return
    reason = failure_reason(sys.exc_info()[1])
    after_commit(lambda: PROVISIONING_FAILURES.labels(reason).inc())


def _verb(method: str, content_type: str) -> str:
    if method == "PATCH" and content_type.startswith("application/apply-patch"):
        return "apply"
    return {"GET": "get", "DELETE": "delete", "POST": "create", "PUT": "update", "PATCH": "patch"}.get(method, "other")


def metered(call: F) -> F:
    """Count and time each Kubernetes API call made by `call(method, path, ..., content_type=...)`, and
    its errors by HTTP status (the ClusterErrors `call` raises)."""

    @functools.wraps(call)
    def wrapper(method: str, *args: Any, **kwargs: Any) -> Any:
        verb = _verb(method, kwargs.get("content_type") or "")
        API_REQUESTS.labels(verb).inc()
        started = time.monotonic()
        try:
            return call(method, *args, **kwargs)
        except ClusterError as exc:
            # A transient error keeps the API server's answer (429, 5xx) as its cause.
            status = getattr(exc, "status", None) or getattr(exc.__cause__, "status", None)
            API_ERRORS.labels(verb, str(status) if status else "none").inc()
            raise
        finally:
            API_DURATION.labels(verb).observe(time.monotonic() - started)

    return wrapper  # type: ignore[return-value]


class ClustersCollector:
    """Each cluster's last known health (1 up, 0 down; none before its first check), and its committed
    quota and capacity per resource (cpu in cores, memory and storage in bytes; no capacity series where
    there is no limit). Three queries, however many clusters and namespaces there are."""

    def collect(self) -> Iterator[Metric]:
        from requests_app.clusters import QUANTITIES, clusters_committed

        clusters = list(Cluster.objects.order_by("name"))
        committed = clusters_committed(clusters)
        healthy = GaugeMetricFamily(
            "leasehold_cluster_healthy",
            "1 if the cluster's API server answered the last health check, 0 if not.",
            labels=["cluster"],
        )
        used = GaugeMetricFamily(
            "leasehold_cluster_committed",
            "Namespace quota committed on the cluster (live namespaces and those on their way), by resource.",
            labels=["cluster", "resource"],
        )
        capacity = GaugeMetricFamily(
            "leasehold_cluster_capacity",
            "What admission lets be committed on the cluster (allocatable x overcommit), by resource.",
            labels=["cluster", "resource"],
        )
        for cluster in clusters:
            if cluster.healthy is not None:
                healthy.add_metric([cluster.name], int(cluster.healthy))
            limits = cluster.capacity()
            for key in QUANTITIES:
                used.add_metric([cluster.name, key], float(getattr(committed[cluster.pk], key)))
                limit = limits[key]
                if limit is not None:
                    capacity.add_metric([cluster.name, key], float(limit))
        yield healthy
        yield used
        yield capacity
