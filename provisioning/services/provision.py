"""The orchestrator: `request_provision`, one worker run over a request (claim, apply, wait, activate)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from .. import cluster
from ..errors import ClusterNotConfigured, PermanentClusterError
from ..models import Phase
from .apply import _apply_all
from .claims import DeliveriesExhausted, NotHere, _claim, _release, _renew
from .readiness import _activate, _readiness, _unready
from .retries import provisioning_wait_for_cluster, request_fail


@dataclass(frozen=True)
class ProvisionOutcome:
    """What a provisioning run ended with: finished (or nothing to do), or waiting for readiness."""

    retry_in: float | None = None


def request_provision(*, request_id, cluster_id: int | None = None) -> ProvisionOutcome:
    """Apply an approved request's objects, record them, wait for readiness, and mark request and
    resource active.

    Idempotent and safe to deliver any number of times, also concurrently: the run claims the request
    (one worker at a time), re-reads its state and does nothing when it is done; objects are recorded
    before they are applied and written with server-side apply, so a re-run converges on the same
    objects. Raises TransientClusterError (retry later), PermanentClusterError or InvalidState (fail),
    or returns how long to wait before checking readiness again.
    """
    try:
        target = cluster.target_by_pk(cluster_id) if cluster_id is not None else cluster.Target()
    except ClusterNotConfigured:  # the message's cluster is gone: the claim finds the request's own, if any
        target = cluster.Target()
    for _ in range(2):
        with cluster.using(target):
            try:
                return _provision_on_cluster(request_id)
            except NotHere as exc:
                row = exc.cluster
        if row.healthy is False:
            # Known down (the health check): no attempt, no claim; it waits and resumes when it answers.
            when = f" since {row.unhealthy_since:%Y-%m-%d %H:%M} UTC" if row.unhealthy_since else ""
            reason = f"cluster {row.name} does not answer{when}" + (
                f": {row.health_detail}" if row.health_detail else ""
            )
            provisioning_wait_for_cluster(request_id=request_id, reason=reason)
            return ProvisionOutcome()
        target = cluster.target_of(row)  # the message named another cluster (or none): run on the request's
    raise AssertionError("unreachable: the second run is on the request's own cluster")


def _provision_on_cluster(request_id) -> ProvisionOutcome:
    try:
        claim = _claim(request_id)
    except DeliveriesExhausted as exc:
        request_fail(request_id=request_id, reason=str(exc))
        return ProvisionOutcome()
    if claim is None:
        return ProvisionOutcome()
    try:
        applying = claim.job.phase != Phase.READINESS
        if applying:
            # Readiness judged on the apply answers, and what is ready marked with the applies (one write).
            checked: list[tuple[list[str], int, list[int]]] = []

            def ready_now(stored: dict) -> list[int]:
                checked.append(_readiness(claim, stored))
                return checked[0][2]

            _apply_all(claim, ready_now=ready_now)
            waiting, count, _ = checked[0]
        else:
            waiting, count = _unready(claim, {})
        if waiting:
            now = timezone.now()
            # Just applied: the readiness phase starts now (recorded with the wait below, in one write).
            started = {"phase": Phase.READINESS} if applying else {}
            deadline = now + timedelta(seconds=settings.LEASEHOLD_READY_TIMEOUT_SECONDS) if applying else None
            deadline = deadline or claim.job.ready_deadline or now
            if now >= deadline:
                raise PermanentClusterError(
                    f"Not ready within {settings.LEASEHOLD_READY_TIMEOUT_SECONDS:g}s: {'; '.join(waiting)}."
                )
            poll = settings.LEASEHOLD_READY_POLL_SECONDS
            _renew(
                claim,
                release=True,
                **started,
                ready_deadline=deadline,
                last_error=f"waiting for: {'; '.join(waiting)}",
                retry_at=now + timedelta(seconds=poll),
            )
            claim.released = True
            return ProvisionOutcome(retry_in=poll)
        _activate(claim, count=count)
        claim.released = True
        return ProvisionOutcome()
    finally:
        _release(claim)
