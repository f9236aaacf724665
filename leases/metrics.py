"""Metrics of leases, reclamation passes and backups (README "Metrics and alerts").

Leases, the last passes and backups are read from the database when /metrics is scraped (a pass may
have run in the CronJob, which nobody scrapes); the process that runs a pass also counts it here.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

from django.db.models import Count
from django.utils import timezone
from prometheus_client import Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from .models import Backup, BackupKind, BackupState, Lease, LeaseState, ReclaimPass

RECLAIM_PASSES = Counter(
    "leasehold_reclaim_passes_total", "Reclamation passes run in this process, by result.", ["result"]
)
RECLAIM_DURATION = Histogram(
    "leasehold_reclaim_pass_duration_seconds",
    "Duration of the reclamation passes run in this process.",
    buckets=(0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, float("inf")),
)
RECLAIM_OUTCOMES = Counter(
    "leasehold_reclaim_outcomes_total",
    "What the reclamation passes run in this process did: leases (or mails) per stage.",
    ["outcome"],
)
# Leases in these states are counted (each by its own partial index); reclaimed ones only pile up.
COUNTED_STATES = (LeaseState.ACTIVE, LeaseState.GRACE, LeaseState.RECLAIMING)
EXPIRING_DAYS = 7


class LeasesCollector:
    """Leases by state and expiring soon; the last reclamation pass; backups by kind and outcome.
    About ten queries, each on an index, none growing with the number of reclaimed leases."""

    def collect(self) -> Iterator[Metric]:
        now = timezone.now()
        leases = GaugeMetricFamily(
            "leasehold_leases", "Leases by state (reclaimed ones are not counted).", labels=["state"]
        )
        for state in COUNTED_STATES:
            leases.add_metric([state], Lease.objects.filter(state=state).count())
        yield leases
        yield GaugeMetricFamily(
            "leasehold_leases_expiring_7d",
            f"Active leases that expire within {EXPIRING_DAYS} days.",
            value=Lease.objects.filter(
                state=LeaseState.ACTIVE, expires_at__gt=now, expires_at__lte=now + timedelta(days=EXPIRING_DAYS)
            ).count(),
        )
        yield from self._passes()
        yield from self._backups()

    def _passes(self) -> Iterator[Metric]:
        success = ReclaimPass.objects.filter(completed=True).order_by("-finished_at").first()
        if success is not None:
            yield GaugeMetricFamily(
                "leasehold_reclaim_last_success_timestamp_seconds",
                "When the last reclamation pass that completed ended, as a Unix time.",
                value=success.finished_at.timestamp(),
            )
        last = ReclaimPass.objects.order_by("-finished_at").first()
        if last is None:
            return
        yield GaugeMetricFamily(
            "leasehold_reclaim_last_pass_timestamp_seconds",
            "When the last reclamation pass (completed or not) ended, as a Unix time.",
            value=last.finished_at.timestamp(),
        )
        yield GaugeMetricFamily(
            "leasehold_reclaim_last_pass_completed",
            "1 if the last reclamation pass completed, 0 if it failed.",
            value=int(last.completed),
        )
        yield GaugeMetricFamily(
            "leasehold_reclaim_last_pass_duration_seconds",
            "How long the last reclamation pass took.",
            value=last.duration_seconds,
        )
        outcomes = GaugeMetricFamily(
            "leasehold_reclaim_last_pass_outcomes",
            "What the last reclamation pass did: leases (or mails) per stage.",
            labels=["outcome"],
        )
        for name, count in sorted(last.outcomes.items()):
            outcomes.add_metric([name], count)
        yield outcomes

    def _backups(self) -> Iterator[Metric]:
        finished = CounterMetricFamily(
            "leasehold_backups",
            "Backups (dumps) and restores that finished, by kind and outcome (every one ever: a counter).",
            labels=["kind", "outcome"],
        )
        running = GaugeMetricFamily(
            "leasehold_backups_running", "Backups and restores running, by kind.", labels=["kind"]
        )
        counts = {
            (kind, state): n
            for kind, state, n in Backup.objects.values_list("kind", "state").annotate(n=Count("pk")).order_by()
        }
        for kind in BackupKind.values:
            for outcome in (BackupState.SUCCEEDED, BackupState.FAILED):
                finished.add_metric([kind, outcome], counts.get((kind, outcome), 0))
            running.add_metric([kind], counts.get((kind, BackupState.RUNNING), 0))
        yield finished
        yield running
