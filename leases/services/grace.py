"""Expired leases into grace: the pass's claim on a lease, and quarantine (workloads scaled to zero) on
the lease's cluster."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from provisioning import cluster
from requests_app.models import (
    Resource,
    ResourceState,
)
from requests_app.names import count_of
from requests_app.services import (
    transition_apply,
)

from .. import workloads
from ..models import Lease, LeaseState
from .extension import lease_restore_workloads


def _claim_lease(lease_id: int, **conditions) -> uuid.UUID | None:
    """Take a lease for one step of a pass (or a release) with a compare-and-set: no row lock is held
    while the step calls the cluster, and other passes skip the lease until the claim is released or
    runs out (LEASEHOLD_LEASE_CLAIM_SECONDS, when the process holding it died)."""
    token = uuid.uuid4()
    now = timezone.now()
    taken = (
        Lease.objects.filter(pk=lease_id, **conditions)
        .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))
        .update(claim_token=token, claimed_until=now + timedelta(seconds=settings.LEASEHOLD_LEASE_CLAIM_SECONDS))
    )
    return token if taken else None


def _release_lease(lease_id: int, token: uuid.UUID) -> None:
    Lease.objects.filter(pk=lease_id, claim_token=token).update(claim_token=None, claimed_until=None)


def _release_leases(lease_ids: list[int], token: uuid.UUID) -> None:
    if lease_ids:
        Lease.objects.filter(pk__in=lease_ids, claim_token=token).update(claim_token=None, claimed_until=None)


def _remember_replicas(lease_id: int, counts: dict[str, int]) -> None:
    """Keep the counts to restore before anything is scaled down (a later partial failure keeps them)."""
    Lease.objects.filter(pk=lease_id).update(quarantined_replicas=counts)


def lease_enter_grace(*, lease_id: int, now: datetime) -> bool:
    """Quarantine one expired lease: remember the replica counts, scale the workloads to zero, and only
    then record grace (lease and resource). False when another pass has it, or it was extended meanwhile
    (its workloads are then restored). Raises ClusterError with nothing recorded: the next pass retries."""
    token = _claim_lease(lease_id, state=LeaseState.ACTIVE, expires_at__lte=now)
    if token is None:
        return False
    try:
        lease = Lease.objects.select_related("resource__cluster").get(pk=lease_id)
        with cluster.using(lease.resource.cluster):
            counts = workloads.replica_counts(lease.resource, lease.quarantined_replicas)
            _remember_replicas(lease_id, counts)
            workloads.scale_to_zero(lease.resource)
        with transaction.atomic():
            lease = Lease.objects.select_for_update().get(pk=lease_id)
            due = lease.claim_token == token and lease.state == LeaseState.ACTIVE and lease.expires_at <= now
            if due:
                resource = Resource.objects.select_for_update().get(pk=lease.resource_id)
                grace_until = max(now, lease.expires_at) + timedelta(days=settings.LEASE_GRACE_DAYS)
                request = resource.created_by_request
                transition_apply(
                    lease,
                    "enter_grace",
                    actor=None,
                    verb="lease_expired",
                    resource=resource,
                    request=request,
                    grace_until=grace_until,
                    detail=(
                        f"in grace until {grace_until:%Y-%m-%d %H:%M} UTC; "
                        f"{count_of(len(counts), 'workload')} scaled to zero"
                    ),
                )
                if resource.state == ResourceState.ACTIVE:
                    transition_apply(resource, "enter_grace", actor=None, verb="quarantined", request=request)
        if not due:  # extended while its workloads were being scaled down
            lease_restore_workloads(lease_id=lease_id)
        return due
    finally:
        _release_lease(lease_id, token)


def lease_quarantine(*, lease_id: int) -> int:
    """Keep a lease in grace quarantined (a workload scaled up by hand goes back to zero; the counts to
    restore are kept). Returns how many workloads it has."""
    lease = Lease.objects.select_related("resource__cluster").get(pk=lease_id)
    with cluster.using(lease.resource.cluster):
        counts = workloads.replica_counts(lease.resource, lease.quarantined_replicas)
        if counts != lease.quarantined_replicas:
            Lease.objects.filter(pk=lease_id, state=LeaseState.GRACE).update(quarantined_replicas=counts)
        return workloads.scale_to_zero(lease.resource)
