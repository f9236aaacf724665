"""Metrics of the approval queue (README "Metrics and alerts").

The decision times are observed where a step is decided (in process); the queue is read from the
database when /metrics is scraped: one indexed aggregate over the pending steps.
"""

from __future__ import annotations

from collections.abc import Iterator

from django.conf import settings
from django.db.models import Count, Min
from django.dispatch import receiver
from django.utils import timezone
from django_fsm.signals import post_transition
from prometheus_client import Histogram
from prometheus_client.core import GaugeMetricFamily, Metric

from requests_app.metrics import WAITING_BUCKETS, after_commit

from .models import ApprovalStep, StepState

STEP_DECIDED = Histogram(
    "leasehold_approval_step_decided_seconds",
    "Time from filing a request to each of its approval steps being decided, by step name and verdict.",
    ["step", "verdict"],
    buckets=WAITING_BUCKETS,
)


@receiver(post_transition, sender=ApprovalStep, dispatch_uid="approvals.metrics.step_decided")
def observe_decision(sender, instance: ApprovalStep, target: str, **kwargs) -> None:
    if target not in (StepState.APPROVED, StepState.REJECTED):
        return
    waited = (timezone.now() - instance.request.created_at).total_seconds()
    labels = (instance.name, target)
    after_commit(lambda: STEP_DECIDED.labels(*labels).observe(waited))


class ApprovalQueueCollector:
    """Pending steps per approver group and the age of the oldest, plus the escalation delay the
    alert compares that age with (APPROVAL_ESCALATION_HOURS)."""

    def collect(self) -> Iterator[Metric]:
        now = timezone.now()
        depth = GaugeMetricFamily(
            "leasehold_approval_queue_depth", "Approval steps pending, by approver group.", labels=["group"]
        )
        oldest = GaugeMetricFamily(
            "leasehold_approval_oldest_pending_age_seconds",
            "How long the oldest pending approval step of each approver group has waited.",
            labels=["group"],
        )
        rows = (
            ApprovalStep.objects.filter(state=StepState.PENDING)
            .values_list("group")
            .annotate(n=Count("pk"), since=Min("pending_since"))
            .order_by()
        )
        for group, n, since in rows:
            depth.add_metric([group], n)
            oldest.add_metric([group], max(0.0, (now - since).total_seconds()) if since else 0.0)
        yield depth
        yield oldest
        yield GaugeMetricFamily(
            "leasehold_approval_escalation_threshold_seconds",
            "APPROVAL_ESCALATION_HOURS in seconds: a step pending longer is escalated (and alerted).",
            value=settings.APPROVAL_ESCALATION_HOURS * 3600,
        )
