"""Opening a lease when a resource becomes active, and the database's clock every lease decision reads."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.db import connection
from django.utils import timezone

from requests_app.batch import batch_create, in_batch
from requests_app.models import (
    Resource,
)
from requests_app.services import (
    audit_record,
)

from ..models import Lease


def database_now() -> datetime:
    """The database's clock in UTC: a worker with a skewed clock or time zone must not reclaim early."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT CURRENT_TIMESTAMP")
        value = cursor.fetchone()[0]
    if isinstance(value, str):  # SQLite returns text in UTC
        value = datetime.fromisoformat(value)
    if timezone.is_naive(value):
        value = timezone.make_aware(value, UTC)
    return value.astimezone(UTC)


def _parent_expiry(resource: Resource) -> datetime | None:
    if not resource.parent_id:
        return None
    return Lease.objects.filter(resource_id=resource.parent_id).values_list("expires_at", flat=True).first()


def lease_open(*, resource: Resource, activating: bool = False) -> Lease:
    """Start the lease of a resource that just became active: it expires `lease_days` after activation,
    and never after the lease of the namespace it lives in.

    `activating`: called from the resource's activation, under its row lock, and the caller saves the
    resource after this. A resource is activated once (only from provisioning, which it enters when it is
    made, or retried after a failure that never activated it), so it has no lease yet: no read for one,
    and its expiry goes into the caller's save instead of an update of its own. (A lease there anyway
    would fail the insert, one lease per resource, and the activation with it: never a second lease.)"""
    starts = resource.activated_at or timezone.now()
    expires = starts + timedelta(days=resource.lease_days)
    parent_expiry = _parent_expiry(resource)
    if parent_expiry is not None:
        expires = min(expires, parent_expiry)
    # Opened at activation, under the resource's row lock: a read (unless `activating`), and an insert
    # when there is none (no savepoint for a race that cannot happen there).
    lease = None if activating else Lease.objects.filter(resource=resource).first()
    created = lease is None
    if lease is None:
        lease = Lease(resource=resource, starts_at=starts, expires_at=expires)
        if in_batch():  # the activation's write_batch(): the insert goes with its other writes
            lease.derive()
            batch_create([lease])
        else:
            lease.save(force_insert=True)
    # Opened from the activation's post_transition signal, before the caller saves this very instance:
    # without the attribute set, that save would write the expiry back to empty.
    resource.lease_expires_at = lease.expires_at
    if created:
        if not activating:
            Resource.objects.filter(pk=resource.pk).update(lease_expires_at=lease.expires_at)
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
