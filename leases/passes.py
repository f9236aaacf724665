"""Reclamation passes, recorded: `manage.py reclaim_leases` (the CronJob) and the beat's task run a
pass through `reclaim_pass_recorded`, which keeps one ReclaimPass row per pass (what /metrics and its
alerts read) and counts it in this process's metrics."""

from __future__ import annotations

import logging
import time
from datetime import datetime

from django.db import DatabaseError
from django.utils import timezone

from requests_app import logs

from . import metrics
from .models import ReclaimPass
from .services.reclaim_pass import reclaim_pass
from .services.report import Outcome, ReclaimReport

log = logging.getLogger(__name__)

# What a pass reports, stage by stage (ReclaimReport's outcomes): the `outcome` label of its metrics.
OUTCOMES = tuple(outcome.value for outcome in Outcome)


def report_outcomes(report: ReclaimReport) -> dict[str, int]:
    """Entries per outcome, counted by each entry's `outcome` (never its text); the errors include the
    failed backups, which are counted on their own too (`backup_failed`)."""
    return report.counts()


def reclaim_pass_recorded(
    *,
    origin: str,
    now: datetime | None = None,
    dry_run: bool = False,
    cluster: str | None = None,
    fan_out: bool = False,
) -> ReclaimReport:
    """Run one reclamation pass (leases.services.reclaim_pass.reclaim_pass: all of it, one cluster's part
    with `cluster`, the shared part and the per-cluster tasks with `fan_out`) and record it; a dry run is
    not recorded. Each cluster's part sent by the beat's pass is a pass of its own (one row, its own
    counts). A pass that raises is recorded as not completed (when the database still answers) and re-raised."""
    started, clock = timezone.now(), time.monotonic()
    with logs.bind(request_id=logs.request_id.get() or f"reclaim-{logs.new_request_id()}"):
        try:
            report = reclaim_pass(now=now, dry_run=dry_run, cluster=cluster, fan_out=fan_out)
        except Exception as exc:
            if not dry_run:
                metrics.RECLAIM_PASSES.labels("failed").inc()
                _record(started, clock, origin=origin, completed=False, error=f"{type(exc).__name__}: {exc}")
            raise
        if not dry_run:
            outcomes = report_outcomes(report)
            duration = _record(started, clock, origin=origin, completed=True, outcomes=outcomes)
            metrics.RECLAIM_PASSES.labels("completed").inc()
            metrics.RECLAIM_DURATION.observe(duration)
            for name, count in outcomes.items():
                metrics.RECLAIM_OUTCOMES.labels(name).inc(count)
        return report


def _record(
    started: datetime, clock: float, *, origin: str, completed: bool, outcomes: dict | None = None, error: str = ""
) -> float:
    duration = time.monotonic() - clock
    try:
        ReclaimPass.objects.create(
            started_at=started,
            finished_at=timezone.now(),
            duration_seconds=duration,
            completed=completed,
            origin=origin,
            outcomes=outcomes or {},
            error=error[:2000],
        )
    except DatabaseError:
        log.exception("could not record the reclamation pass that started at %s", started.isoformat())
    return duration
