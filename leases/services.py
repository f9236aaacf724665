"""Lease lifecycle: open on activation, grace after expiry, reclamation after grace."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from provisioning.errors import ClusterError
from provisioning.services import resource_teardown
from requests_app.errors import InvalidState
from requests_app.models import RequestState, Resource, ResourceRequest
from requests_app.services import audit_record, transition_apply

from .models import Lease, LeaseState

log = logging.getLogger(__name__)


def lease_open(*, resource: Resource) -> Lease:
    """Start the lease of a resource that just became active: it expires `lease_days` after activation."""
    starts = resource.activated_at or timezone.now()
    lease, created = Lease.objects.get_or_create(
        resource=resource,
        defaults={"starts_at": starts, "expires_at": starts + timedelta(days=resource.lease_days)},
    )
    if created:
        audit_record(
            actor=None,
            verb="lease_opened",
            target=lease,
            resource=resource,
            request=resource.created_by_request,
            to_state=lease.state,
            detail=f"expires {lease.expires_at:%Y-%m-%d %H:%M} UTC",
        )
    return lease


def database_now() -> datetime:
    """The database's clock in UTC: a worker with a skewed clock must not reclaim early."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT CURRENT_TIMESTAMP")
        value = cursor.fetchone()[0]
    if isinstance(value, str):  # SQLite returns text in UTC
        value = datetime.fromisoformat(value)
    if timezone.is_naive(value):
        value = timezone.make_aware(value, UTC)
    return value


@dataclass
class ReclaimReport:
    """What one reclamation pass did (or, dry-run, would do)."""

    now: datetime
    dry_run: bool
    to_grace: list[str] = field(default_factory=list)
    reclaimed: list[str] = field(default_factory=list)
    in_progress: list[str] = field(default_factory=list)
    deferred: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        mode = "dry run: would" if self.dry_run else "did"
        out = [f"Reclamation pass at {self.now.isoformat()} ({'dry run' if self.dry_run else 'live'})"]
        for title, items in (
            (f"{mode} move to grace", self.to_grace),
            (f"{mode} reclaim", self.reclaimed),
            ("still going away", self.in_progress),
            (f"left for the next pass (RECLAIM_MAX_PER_RUN={settings.RECLAIM_MAX_PER_RUN})", self.deferred),
            ("left alone (not ours, or protected)", self.refused),
            ("errors", self.errors),
        ):
            out.append(f"{title}: {len(items)}")
            out.extend(f"  - {item}" for item in items)
        return out


def _expired_active(now: datetime):
    return Lease.objects.filter(state=LeaseState.ACTIVE, expires_at__lte=now)


def _due(now: datetime):
    return Lease.objects.filter(state=LeaseState.GRACE, grace_until__lte=now) | Lease.objects.filter(
        state=LeaseState.RECLAIMING
    )


def lease_enter_grace(*, lease_id: int, now: datetime) -> bool:
    """Move one expired lease (and its resource) into grace. False when another pass got there first."""
    with transaction.atomic():
        lease = (
            Lease.objects.select_for_update(skip_locked=True)
            .filter(pk=lease_id, state=LeaseState.ACTIVE, expires_at__lte=now)
            .select_related("resource")
            .first()
        )
        if lease is None:
            return False
        resource = Resource.objects.select_for_update().get(pk=lease.resource_id)
        grace_until = max(now, lease.expires_at) + timedelta(days=settings.LEASE_GRACE_DAYS)
        transition_apply(
            lease,
            "enter_grace",
            actor=None,
            verb="lease_expired",
            resource=resource,
            request=resource.created_by_request,
            grace_until=grace_until,
            detail=f"in grace until {grace_until:%Y-%m-%d %H:%M} UTC",
        )
        transition_apply(resource, "enter_grace", actor=None, verb="quarantined", request=resource.created_by_request)
    return True


def lease_reclaim(*, lease_id: int, now: datetime) -> tuple[bool, str]:
    """Delete a lease's objects and mark lease, resource and request reclaimed.

    Returns (done, note). Not done while objects are still going away; the next pass finishes.
    """
    with transaction.atomic():
        lease = (
            Lease.objects.select_for_update(skip_locked=True)
            .filter(pk=lease_id, state__in=[LeaseState.GRACE, LeaseState.RECLAIMING])
            .select_related("resource")
            .first()
        )
        if lease is None:
            return False, "taken by another pass"
        resource = Resource.objects.select_for_update().get(pk=lease.resource_id)
        if lease.state == LeaseState.GRACE:
            if lease.grace_until is None or lease.grace_until > now:
                return False, "still in grace"
            request = resource.created_by_request
            transition_apply(
                lease, "start_reclaim", actor=None, verb="reclaim_started", resource=resource, request=request
            )
            transition_apply(resource, "start_reclaim", actor=None, verb="reclaim_started", request=request)

    return _teardown_and_finish(lease_id=lease_id, resource=resource, now=now)


def _teardown_and_finish(*, lease_id: int, resource: Resource, now: datetime) -> tuple[bool, str]:
    """Delete a reclaiming resource's objects; when all are gone, mark lease, resource and request reclaimed."""
    report = resource_teardown(resource=resource)
    note = "; ".join(
        [f"deleted {', '.join(report.deleted)}"] * bool(report.deleted)
        + [f"pending {', '.join(report.pending)}"] * bool(report.pending)
        + [f"left alone {', '.join(report.refused)}"] * bool(report.refused)
    )
    with transaction.atomic():
        lease = Lease.objects.select_for_update().get(pk=lease_id)
        lease.last_report = note
        lease.save(update_fields=["last_report"])
        if not report.complete:
            return False, note
        resource = Resource.objects.select_for_update().get(pk=lease.resource_id)
        request = ResourceRequest.objects.select_for_update().get(pk=resource.created_by_request_id)
        transition_apply(
            lease,
            "mark_reclaimed",
            actor=None,
            verb="lease_reclaimed",
            resource=resource,
            request=request,
            at=now,
            detail=note,
        )
        transition_apply(resource, "mark_reclaimed", actor=None, verb="reclaimed", request=request, detail=note)
        if request.state == RequestState.ACTIVE:
            transition_apply(request, "mark_reclaimed", actor=None, verb="reclaimed", resource=resource)
    return True, note


def resource_release(*, resource: Resource, actor) -> tuple[bool, str]:
    """Give a resource back now: no grace, its objects are deleted at once (CONTRACT.md §3 release)."""
    now = database_now()
    with transaction.atomic():
        lease = Lease.objects.select_for_update().filter(resource=resource).first()
        if lease is None or lease.state not in (LeaseState.ACTIVE, LeaseState.GRACE):
            raise InvalidState(f"Only an active resource can be released; this one is {resource.state}.")
        resource = Resource.objects.select_for_update().get(pk=resource.pk)
        request = resource.created_by_request
        transition_apply(lease, "start_reclaim", actor=actor, verb="released", resource=resource, request=request)
        transition_apply(resource, "start_reclaim", actor=actor, verb="released", request=request)
    return _teardown_and_finish(lease_id=lease.pk, resource=resource, now=now)


def _label(lease: Lease) -> str:
    r = lease.resource
    return f"{r.kind} {r.namespace_name or r.name} (resource {r.pk}, lease expired {lease.expires_at:%Y-%m-%d %H:%M})"


def reclaim_pass(*, now: datetime | None = None, dry_run: bool = False) -> ReclaimReport:
    """One reclamation pass: expired leases into grace, leases past grace reclaimed (capped)."""
    now = now or database_now()
    report = ReclaimReport(now=now, dry_run=dry_run)
    for lease in _expired_active(now).select_related("resource", "resource__team", "resource__parent"):
        if dry_run or lease_enter_grace(lease_id=lease.pk, now=now):
            report.to_grace.append(_label(lease))
    budget = settings.RECLAIM_MAX_PER_RUN
    for lease in _due(now).select_related("resource", "resource__team").order_by("grace_until", "pk"):
        if budget <= 0:
            report.deferred.append(_label(lease))
            continue
        if dry_run:
            report.reclaimed.append(_label(lease))
            budget -= 1
            continue
        try:
            done, note = lease_reclaim(lease_id=lease.pk, now=now)
        except ClusterError as exc:
            log.warning("reclaiming lease %s failed: %s", lease.pk, exc)
            report.errors.append(f"{_label(lease)}: {exc}")
            continue
        budget -= 1
        (report.reclaimed if done else report.in_progress).append(f"{_label(lease)}: {note}" if note else _label(lease))
    return report
