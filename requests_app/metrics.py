"""Metrics of requests and of the periodic jobs (README "Metrics and alerts").

Counters and histograms count events in the process where they happen (prometheus-client's
multiprocess mode adds up the processes of a pod); `RequestsCollector` reads state from the database
when /metrics is scraped, so that every replica tells the same and a restart loses nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from django.db import transaction
from django.db.models import Count
from django.dispatch import receiver
from django.utils import timezone
from django_fsm.signals import post_transition
from prometheus_client import Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric

from .models import Heartbeat, RequestState, ResourceRequest
from .signals import request_submitted

# Waiting times from seconds (approved at once, a namespace that is active in seconds) to two weeks.
WAITING_BUCKETS = (
    1,
    5,
    15,
    30,
    60,
    120,
    300,
    900,
    1800,
    3600,
    4 * 3600,
    12 * 3600,
    24 * 3600,
    2 * 86400,
    4 * 86400,
    7 * 86400,
    14 * 86400,
    float("inf"),
)
# The states a request is alive in: few (bounded by budgets), unlike the finished ones that pile up.
LIVE_STATES = (RequestState.PENDING_APPROVAL, RequestState.APPROVED, RequestState.PROVISIONING, RequestState.ACTIVE)

REQUESTS_FILED = Counter(
    "leasehold_requests_filed_total", "Requests filed, by kind, action and team.", ["kind", "action", "team"]
)
REQUEST_TRANSITIONS = Counter(
    "leasehold_request_transitions_total", "Requests that entered a state, by kind and state.", ["kind", "state"]
)
TIME_TO_ACTIVE = Histogram(
    "leasehold_request_time_to_active_seconds",
    "Time from filing a request to it being active (provisioned, or carried out), by kind and action.",
    ["kind", "action"],
    buckets=WAITING_BUCKETS,
)


class MetricUpdate:
    """A metric update waiting for its transaction to commit (a rolled-back transition did not happen).
    A class of its own, so that a test counting the work scheduled after commit can tell it apart."""

    def __init__(self, update: Callable[[], object]):
        self.update = update

    def __call__(self) -> None:
        self.update()


def after_commit(update: Callable[[], object]) -> None:
    transaction.on_commit(MetricUpdate(update))


@receiver(request_submitted, dispatch_uid="requests_app.metrics.filed")
def count_filed(sender, request: ResourceRequest, **kwargs) -> None:
    labels = (request.kind, request.action, request.team.slug)
    after_commit(lambda: REQUESTS_FILED.labels(*labels).inc())


@receiver(post_transition, sender=ResourceRequest, dispatch_uid="requests_app.metrics.transition")
def count_transition(sender, instance: ResourceRequest, target: str, **kwargs) -> None:
    kind, action = instance.kind, instance.action
    after_commit(lambda: REQUEST_TRANSITIONS.labels(kind, target).inc())
    if target == RequestState.ACTIVE and instance.created_at is not None:
        waited = (timezone.now() - instance.created_at).total_seconds()
        after_commit(lambda: TIME_TO_ACTIVE.labels(kind, action).observe(waited))


class RequestsCollector:
    """Live requests by kind, state and team (one index-only scan of the live ones), and when each
    periodic job last finished (one row per job)."""

    def collect(self) -> Iterator[Metric]:
        requests = GaugeMetricFamily(
            "leasehold_requests",
            "Live requests (pending approval, approved, provisioning, active) by kind, state and team.",
            labels=["kind", "state", "team"],
        )
        rows = (
            ResourceRequest.objects.filter(state__in=LIVE_STATES)
            .values_list("kind", "state", "team__slug")
            .annotate(n=Count("pk"))
            .order_by()
        )
        for kind, state, team, n in rows:
            requests.add_metric([kind, state, team], n)
        yield requests
        beats = GaugeMetricFamily(
            "leasehold_periodic_last_success_timestamp_seconds",
            "When each periodic job (the beat schedule) last finished, as a Unix time.",
            labels=["task"],
        )
        for task, at in Heartbeat.objects.values_list("task", "last_success_at"):
            beats.add_metric([task], at.timestamp())
        yield beats
