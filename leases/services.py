"""Lease lifecycle: open on activation, notices, extension, grace (quarantine), backup, reclamation."""

from __future__ import annotations

import logging
import operator
import threading
import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import reduce
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ImproperlyConfigured
from django.db import connection, transaction
from django.db.models import Exists, F, OuterRef, Prefetch, Q, QuerySet, prefetch_related_objects
from django.utils import timezone
from django_fsm import can_proceed

from provisioning import cluster
from provisioning.errors import ClusterError, ClusterNotConfigured
from provisioning.models import ManagedObject
from provisioning.services import (
    TeardownPlan,
    TeardownReport,
    resource_manifests,
    resource_reapply,
    teardown_plan,
    teardown_record,
    teardown_run,
)
from requests_app.errors import InvalidState, NotAllowed, Unavailable, ValidationFailed
from requests_app.models import (
    Action,
    AuditEvent,
    Kind,
    MailState,
    OutgoingMail,
    RequestState,
    Resource,
    ResourceRequest,
    ResourceState,
)
from requests_app.names import count_of
from requests_app.selectors import mail_pending, teams_of, user_is_admin
from requests_app.services import (
    audit_record,
    followups_withdraw,
    mail_deliver_pending,
    request_file_followup,
    request_submit,
    transition_apply,
)

from . import backup, notices, workloads
from .models import Backup, BackupKind, BackupState, Lease, LeaseState, OwnerCheck, next_notice_at

log = logging.getLogger(__name__)
BACKUP_RETRY_AFTER = timedelta(hours=1)
WITHDRAWN = "withdrawn: the resource is being reclaimed, so it can no longer be changed or extended"


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


def lease_open(*, resource: Resource) -> Lease:
    """Start the lease of a resource that just became active: it expires `lease_days` after activation,
    and never after the lease of the namespace it lives in."""
    starts = resource.activated_at or timezone.now()
    expires = starts + timedelta(days=resource.lease_days)
    parent_expiry = _parent_expiry(resource)
    if parent_expiry is not None:
        expires = min(expires, parent_expiry)
    # Opened at activation, under the resource's row lock: a read, and an insert when there is none
    # (no savepoint for a race that cannot happen there).
    lease = Lease.objects.filter(resource=resource).first()
    created = lease is None
    if lease is None:
        lease = Lease.objects.create(resource=resource, starts_at=starts, expires_at=expires)
    # Opened from the activation's post_transition signal, before the caller saves this very instance:
    # without the attribute set, that save would write the expiry back to empty.
    resource.lease_expires_at = lease.expires_at
    if created:
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


# --- extension ------------------------------------------------------------------------------------


def _may_manage(user, resource: Resource) -> bool:
    return user_is_admin(user) or teams_of(user).filter(pk=resource.team_id).exists()


def lease_extend(
    *, resource: Resource, actor, days: int, justification: str, now: datetime | None = None
) -> tuple[str, Lease | ResourceRequest]:
    """Extend a lease by `days`: at once within policy (`("extended", lease)`), else through approval
    (`("requested", extend request)`). The owner, a teammate or an admin may ask."""
    if not _may_manage(actor, resource):
        raise NotAllowed("Only the owner's team can extend this lease.")
    if not isinstance(days, int) or isinstance(days, bool) or not 1 <= days <= settings.LEASE_MAX_DAYS:
        raise ValidationFailed({"days": [f"Must be a whole number of days from 1 to {settings.LEASE_MAX_DAYS}."]})
    if not (justification or "").strip():
        raise ValidationFailed({"justification": ["Say why the resource is still needed."]})
    now = now or database_now()
    lease = Lease.objects.filter(resource=resource).first()
    if lease is None or lease.state not in (LeaseState.ACTIVE, LeaseState.GRACE):
        raise InvalidState(f"Only an active or quarantined resource can be extended; this one is {resource.state}.")
    new_expiry = _extended_expiry(lease, days, now)
    parent_expiry = _parent_expiry(resource)
    if parent_expiry is not None and new_expiry > parent_expiry:
        raise ValidationFailed(
            {"days": [f"The namespace's lease ends {parent_expiry:%Y-%m-%d %H:%M} UTC: extend the namespace first."]}
        )
    if _beyond_total(lease, new_expiry):
        request = request_file_followup(
            requester=actor, resource=resource, action=Action.EXTEND, lease_days=days, justification=justification
        )
        return "requested", request
    return "extended", lease_apply_extension(lease_id=lease.pk, days=days, actor=actor, now=now, reason=justification)


@dataclass(frozen=True)
class ChildExtension:
    """What became of one app or database extended together with its namespace."""

    resource: Resource
    outcome: str  # "extended", "requested" (an extend request waits for approval) or "failed"
    restored: bool = False  # it was quarantined and its lease is active again
    detail: str = ""  # the new expiry, the request filed, or why it failed
    workloads_pending: bool = False  # restored, but the cluster did not take the replica counts yet (next pass)


def lease_extend_together(
    *, namespace: Resource, actor, days: int, justification: str, child_ids: list, now: datetime | None = None
) -> tuple[str, Lease | ResourceRequest, list[ChildExtension]]:
    """Extend a namespace's lease, then the leases of the chosen apps and databases in it by as many days.

    Each is one `lease_extend`: its own checks and limits (a child that would go beyond the policy files its
    own extend request, one that would outlive the namespace's lease is refused), its own transaction and
    audit record. The namespace's failure raises as `lease_extend` does and extends nothing; a child's
    failure is reported in its `ChildExtension` and does not undo the others.
    """
    if namespace.kind != Kind.NAMESPACE:
        raise ValidationFailed({"children": ["Only a namespace's lease extends together with what lives in it."]})
    chosen = set(map(str, child_ids))
    children = list(
        Resource.objects.filter(parent=namespace, pk__in=chosen)
        .select_related("team", "parent", "parent__team", "lease")
        .order_by("kind", "name")
    )
    if len(children) != len(chosen):
        raise ValidationFailed({"children": ["Choose among the apps and databases of this namespace."]})
    now = now or database_now()
    outcome, result = lease_extend(resource=namespace, actor=actor, days=days, justification=justification, now=now)
    done: list[ChildExtension] = []
    for child in children:
        was_in_grace = getattr(child, "lease", None) is not None and child.lease.state == LeaseState.GRACE
        try:
            child_outcome, child_result = lease_extend(
                resource=child, actor=actor, days=days, justification=justification, now=now
            )
        except (ValidationFailed, InvalidState, NotAllowed) as exc:
            reason = (
                " ".join(m for ms in exc.errors.values() for m in ms) if isinstance(exc, ValidationFailed) else str(exc)
            )
            done.append(ChildExtension(child, "failed", detail=reason))
        else:
            if isinstance(child_result, Lease):
                detail = f"{child_result.expires_at:%Y-%m-%d %H:%M} UTC"
                done.append(ChildExtension(child, child_outcome, restored=was_in_grace, detail=detail))
            else:
                done.append(ChildExtension(child, child_outcome, detail=str(child_result.pk)))
    restored = [c.resource.pk for c in done if c.restored]
    pending = set(
        Lease.objects.filter(resource_id__in=restored)
        .exclude(quarantined_replicas={})
        .values_list("resource_id", flat=True)
    )
    done = [replace(c, workloads_pending=c.resource.pk in pending) for c in done]
    return outcome, result, done


def lease_extension_limits(*, lease: Lease, now: datetime) -> dict[str, Any]:
    """The limits `lease_extend` applies to this lease, for people to read before they ask: the longest
    term, the total a lease may run without approval (and until when), the days left within it, and the
    namespace's expiry that a database's or app's lease cannot pass."""
    longest = lease.starts_at + timedelta(days=settings.LEASE_MAX_TOTAL_DAYS)
    # The most days an extension asked now gets at once: the largest term `_beyond_total` lets through.
    days_left = min(settings.LEASE_MAX_DAYS, max(0, (longest - max(lease.expires_at, now)).days + 1))
    while days_left and _beyond_total(lease, _extended_expiry(lease, days_left, now)):
        days_left -= 1
    return {
        "max_days": settings.LEASE_MAX_DAYS,
        "max_total_days": settings.LEASE_MAX_TOTAL_DAYS,
        "total_until": longest,
        "days_left": days_left,
        "parent_expiry": _parent_expiry(lease.resource),
    }


def _beyond_total(lease: Lease, new_expiry: datetime) -> bool:
    """A lease that would then have run longer than LEASE_MAX_TOTAL_DAYS needs approval to get there."""
    return (new_expiry - lease.starts_at).days > settings.LEASE_MAX_TOTAL_DAYS


def _extended_expiry(lease: Lease, days: int, now: datetime) -> datetime:
    # During grace the new term runs from now, not from the past expiry.
    return max(lease.expires_at, now) + timedelta(days=days)


def lease_apply_extension(
    *, lease_id: int, days: int, actor, now: datetime, reason: str = "", fulfils: ResourceRequest | None = None
) -> Lease:
    """Move the expiry, leave grace (restoring the workloads), re-stamp the objects' annotation.

    `fulfils`: the approved extend request this carries out; it is marked fulfilled in the same
    transaction (and nothing happens when it is no longer approved), so a redelivered task never
    extends twice.
    """
    with transaction.atomic():
        if fulfils is not None:
            fulfils = ResourceRequest.objects.select_for_update().get(pk=fulfils.pk)
            if fulfils.state != RequestState.APPROVED:
                return Lease.objects.get(pk=lease_id)
        lease = Lease.objects.select_for_update().select_related("resource").get(pk=lease_id)
        if lease.state not in (LeaseState.ACTIVE, LeaseState.GRACE):
            raise InvalidState(f"The lease is {lease.state}; it can no longer be extended.")
        resource = Resource.objects.select_for_update().get(pk=lease.resource_id)
        old = lease.expires_at
        lease.extensions += 1
        _move_expiry(lease, resource, _extended_expiry(lease, days, now), actor=actor)
        audit_record(
            actor=actor,
            verb="lease_extended",
            target=lease,
            resource=resource,
            request=resource.created_by_request,
            detail=f"{old:%Y-%m-%d %H:%M} → {lease.expires_at:%Y-%m-%d %H:%M} UTC (+{days} days): {reason}".strip(),
        )
        if fulfils is not None:
            transition_apply(fulfils, "fulfil", actor=None, verb="extended", resource=resource)
    _restore_and_restamp(resource, lease.pk)
    return lease


def _move_expiry(lease: Lease, resource: Resource, expires_at: datetime, *, actor) -> None:
    """Set a locked lease's expiry and save it; a lease in grace comes back to active (its remembered
    replica counts stay until the workloads are really back). Runs inside the caller's transaction."""
    request = resource.created_by_request
    lease.expires_at = expires_at
    lease.notices_sent = []  # the notices count down to the new expiry
    if lease.state == LeaseState.GRACE:
        transition_apply(lease, "restore", actor=actor, verb="lease_restored", resource=resource, request=request)
        transition_apply(resource, "restore", actor=actor, verb="restored", request=request)
    lease.save()
    Resource.objects.filter(pk=resource.pk).update(lease_expires_at=lease.expires_at)
    resource.lease_expires_at = lease.expires_at


def _restore_and_restamp(resource: Resource, lease_id: int) -> None:
    """After the commit of a new expiry: bring quarantined workloads back and re-stamp the annotation."""
    try:
        lease_restore_workloads(lease_id=lease_id)
        restamp_objects(resource)
    except (ClusterError, ImproperlyConfigured) as exc:
        # The database holds the new expiry and still remembers the replica counts: the next pass
        # restores the workloads, and the next re-apply repairs the objects' annotation.
        log.warning("new expiry of %s: could not update the cluster yet: %s", resource.pk, exc)


def lease_expiry_errors(*, lease: Lease, expires_at: datetime, now: datetime) -> dict[str, list[str]]:
    """Why an admin cannot set `lease`'s expiry to `expires_at` (empty: they can).

    A correction stays within what the policy lets a lease run without approval (LEASE_MAX_TOTAL_DAYS from
    its start), never outlives the namespace's lease, and never cuts a namespace's lease below the leases
    of what lives in it: longer goes through an extension request, shorter children are corrected first.
    """
    if lease.state not in (LeaseState.ACTIVE, LeaseState.GRACE):
        return {"expires_at": [f"The lease is {lease.state}; its expiry can no longer change."]}
    if expires_at <= now:
        return {"expires_at": [f"Must be in the future (now is {now:%Y-%m-%d %H:%M} UTC); to end it now, release it."]}
    longest = lease.starts_at + timedelta(days=settings.LEASE_MAX_TOTAL_DAYS)
    if expires_at > longest:
        return {
            "expires_at": [
                f"At most {settings.LEASE_MAX_TOTAL_DAYS} days from the start ({longest:%Y-%m-%d %H:%M} UTC); "
                "longer needs an extension request through approval."
            ]
        }
    resource = lease.resource
    parent_expiry = _parent_expiry(resource)
    if parent_expiry is not None and expires_at > parent_expiry:
        return {
            "expires_at": [f"The namespace's lease ends {parent_expiry:%Y-%m-%d %H:%M} UTC: correct that one first."]
        }
    if resource.kind == Kind.NAMESPACE:
        later = Lease.objects.filter(
            resource__parent=resource,
            state__in=(LeaseState.ACTIVE, LeaseState.GRACE),
            expires_at__gt=expires_at,
        ).select_related("resource")
        names = sorted(child.resource.name for child in later)
        if names:
            return {"expires_at": [f"Leases in this namespace end later ({', '.join(names)}): correct those first."]}
    return {}


def lease_correct_expiry(
    *, lease_id: int, expires_at: datetime, actor, reason: str, now: datetime | None = None
) -> Lease:
    """An admin corrects a lease's expiry (a wrong date, an agreed end): audited with the expiry before and
    after and the reason. The extension count is not touched; notices count down to the new expiry; a lease
    in grace comes back (its workloads are restored); the objects' annotation is re-stamped.

    Raises NotAllowed (not an admin), ValidationFailed (see `lease_expiry_errors`).
    """
    if not user_is_admin(actor):
        raise NotAllowed("Only admins can correct a lease's expiry.")
    if not (reason or "").strip():
        raise ValidationFailed({"reason": ["Say why the expiry changes."]})
    now = now or database_now()
    with transaction.atomic():
        lease = Lease.objects.select_for_update().select_related("resource").get(pk=lease_id)
        errors = lease_expiry_errors(lease=lease, expires_at=expires_at, now=now)
        if errors:
            raise ValidationFailed(errors)
        if lease.expires_at == expires_at:
            return lease
        resource = Resource.objects.select_for_update().get(pk=lease.resource_id)
        old = lease.expires_at
        _move_expiry(lease, resource, expires_at, actor=actor)
        audit_record(
            actor=actor,
            verb="lease_corrected",
            target=lease,
            resource=resource,
            request=resource.created_by_request,
            detail=f"expires: {old:%Y-%m-%d %H:%M:%S} → {lease.expires_at:%Y-%m-%d %H:%M:%S} UTC: {reason.strip()}",
        )
    _restore_and_restamp(resource, lease.pk)
    return lease


def lease_restore_workloads(*, lease_id: int) -> list[str]:
    """Scale a lease's workloads back to the remembered counts (after an extension ended its grace, or a
    quarantine that did not finish); the counts are forgotten only once the cluster has them. Raises
    ClusterError (the pass retries)."""
    lease = Lease.objects.select_related("resource").get(pk=lease_id)
    counts = dict(lease.quarantined_replicas)
    if not counts or lease.state != LeaseState.ACTIVE:
        return []
    restored = workloads.restore(lease.resource, counts)
    with transaction.atomic():
        if Lease.objects.filter(pk=lease_id, state=LeaseState.ACTIVE, quarantined_replicas=counts).update(
            quarantined_replicas={}
        ):
            for line in restored:
                audit_record(
                    actor=None,
                    verb="workload_restored",
                    target=lease.resource,
                    request=lease.resource.created_by_request,
                    detail=line,
                )
    return restored


def restamp_objects(resource: Resource) -> None:
    """Re-apply the resource's current objects (an app's current release, never the first request's
    render) so `leasehold.io/lease-expires` shows the current expiry."""
    resource_reapply(resource=resource)


def extension_fulfil(*, request_id) -> None:
    """An approved extend request takes effect (idempotent: a task delivered twice extends once).

    A lease that is already being reclaimed (or gone) can no longer be extended: the request fails
    with that reason, so that it never says "approved" for nothing.
    """
    request = ResourceRequest.objects.select_related("resource").get(pk=request_id)
    if request.state != RequestState.APPROVED or request.action != Action.EXTEND or request.resource is None:
        return
    lease = Lease.objects.filter(resource=request.resource).first()
    try:
        if lease is None:
            raise InvalidState("The resource has no lease any more.")
        lease_apply_extension(
            lease_id=lease.pk,
            days=request.lease_days,
            actor=None,
            now=database_now(),
            reason=f"approved request {request.pk}: {request.justification}",
            fulfils=request,
        )
    except InvalidState as exc:
        reason = f"Not extended: {exc} It was approved too late; restore the resource instead once it is reclaimed."
        with transaction.atomic():
            request = ResourceRequest.objects.select_for_update().get(pk=request_id)
            if request.state == RequestState.APPROVED:
                transition_apply(request, "fail", actor=None, verb="failed", detail=reason, reason=reason)


def extensions_sweep(*, older_than: timedelta = timedelta(minutes=1)) -> list[str]:
    """Approved extend requests whose task was lost (broker restart, worker killed): enqueued again."""
    from .tasks import fulfil_extension

    cutoff = timezone.now() - older_than
    stuck = [
        str(pk)
        for pk in ResourceRequest.objects.filter(
            action=Action.EXTEND, state=RequestState.APPROVED, updated_at__lt=cutoff
        ).values_list("pk", flat=True)[:200]
    ]
    for request_id in stuck:
        publish(fulfil_extension, request_id)
    return stuck


def publish(task, *args) -> None:
    """Send a task; when the broker is down, the sweeps send it again later."""
    try:
        task.delay(*args)
    except Exception:  # any broker failure: the database still says what is due
        log.warning("could not enqueue %s%s; a sweep will", task.name, args, exc_info=True)


# --- reclamation ----------------------------------------------------------------------------------


@dataclass
class ReclaimReport:
    """What one reclamation pass did (or, dry-run, would do)."""

    now: datetime
    dry_run: bool
    notices: list[str] = field(default_factory=list)
    earlier_mail: list[str] = field(default_factory=list)
    handed_over: list[str] = field(default_factory=list)
    to_grace: list[str] = field(default_factory=list)
    backups: list[str] = field(default_factory=list)
    reclaimed: list[str] = field(default_factory=list)
    in_progress: list[str] = field(default_factory=list)
    deferred: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    # The line in `notices` of each expiry notice this pass queued, by outbox id: it goes there only
    # once the mail backend accepted the mail.
    notice_mail: dict[int, str] = field(default_factory=dict, repr=False)

    def sections(self) -> list[tuple[str, list[str]]]:
        would = "would " if self.dry_run else ""
        return [
            (f"{would}notify", self.notices),
            (f"{would}send mail queued earlier (retries)", self.earlier_mail),
            (f"{would}hand over to the team", self.handed_over),
            (f"{would}move to grace (quarantine)", self.to_grace),
            (f"{would}back up", self.backups),
            (f"{would}reclaim (delete)", self.reclaimed),
            ("still going away", self.in_progress),
            (f"left for the next pass (RECLAIM_MAX_PER_RUN={settings.RECLAIM_MAX_PER_RUN})", self.deferred),
            ("left alone (not ours, or protected)", self.refused),
            ("errors", self.errors),
        ]

    def lines(self) -> list[str]:
        out = [f"Reclamation pass at {self.now.isoformat()} ({'dry run' if self.dry_run else 'live'})"]
        for title, items in self.sections():
            out.append(f"{title}: {len(items)}")
            out.extend(f"  - {item}" for item in items)
        return out


# What `_label` reads: a namespace's name is made of its team's slug, a database's of its namespace's.
_LABEL_RELATED = ("resource", "resource__team", "resource__parent__team")


def _label(lease: Lease) -> str:
    r = lease.resource
    return _label_of(r.kind, r.namespace_name, r.name, r.pk, lease.expires_at)


def _label_of(kind: str, namespace: str, name: str, resource_id, expires_at: datetime) -> str:
    # The display name (CONTRACT.md §6), built from plain values: a pass may list thousands.
    where = namespace if kind == Kind.NAMESPACE else f"{namespace} / {name}"
    return f"{kind} {where} (resource {resource_id}, lease expires {expires_at:%Y-%m-%d %H:%M})"


@dataclass(frozen=True)
class _LeaseRow:
    """A lease as a pass lists it, read as plain values (a pass may list thousands)."""

    pk: int
    resource_id: Any
    kind: str
    namespace: str
    name: str
    label: str


# What `_lease_rows` reads: the lease's expiry and what its resource's namespace name is made of (a
# namespace's: its team's slug and its name; a database's or app's: its namespace's).
_DUE_VALUES = (
    "pk",
    "expires_at",
    "resource_id",
    "resource__kind",
    "resource__name",
    "resource__team__slug",
    "resource__parent__name",
    "resource__parent__team__slug",
)


def _lease_rows(leases: QuerySet[Lease]) -> list[_LeaseRow]:
    """The leases as a pass lists them: one query, no model instances."""
    rows = []
    for pk, expires_at, resource_id, kind, name, team, parent, parent_team in leases.values_list(*_DUE_VALUES):
        namespace = f"{team}-{name}" if kind == Kind.NAMESPACE else f"{parent_team}-{parent}" if parent else ""
        label = _label_of(kind, namespace, name, resource_id, expires_at)
        rows.append(_LeaseRow(pk, resource_id, kind, namespace, name, label))
    return rows


def _dry_run_reclaim(listed: list[_LeaseRow], resource_ids: QuerySet, report: ReclaimReport) -> None:
    """What a dry run lists of the leases it would reclaim (`resource_ids`: their resources, as a
    subquery): the databases it would back up first and the objects it would delete, read in two
    queries as plain values."""
    objects: dict[Any, list[str]] = {row.resource_id: [] for row in listed}
    recorded = (
        ManagedObject.objects.filter(resource_id__in=resource_ids, deleted_at__isnull=True)
        .order_by("pk")
        .values_list("resource_id", "api_version", "kind", "namespace", "name")
    )
    for resource_id, api_version, kind, namespace, name in recorded:
        objects.setdefault(resource_id, []).append(str(cluster.ObjectRef(api_version, kind, namespace, name)))
    databases: dict[Any, list[str]] = {}
    children = (
        Resource.objects.filter(parent_id__in=resource_ids, kind=Kind.DATABASE)
        .exclude(state__in=Resource.TERMINAL)
        .order_by("pk")
        .values_list("parent_id", "name")
    )
    for parent_id, name in children:
        databases.setdefault(parent_id, []).append(name)
    for row in listed:
        names = [row.name] if row.kind == Kind.DATABASE else databases.get(row.resource_id, [])
        report.backups.extend(f"database {row.namespace}/{name}" for name in names)
        report.reclaimed.append(f"{row.label}: {', '.join(objects[row.resource_id]) or 'no objects'}")


def _thresholds_due(lease: Lease, now: datetime) -> list[int]:
    left = lease.expires_at - now
    return [
        d
        for d in settings.LEASE_NOTICE_DAYS
        if d not in lease.notices_sent and timedelta(0) < left <= timedelta(days=d)
    ]


def send_notices(*, now: datetime, dry_run: bool, report: ReclaimReport) -> None:
    """One email per crossed threshold of LEASE_NOTICE_DAYS, never twice (even with concurrent passes)."""
    # Only the leases that crossed a threshold not notified yet (`next_notice_at`, kept by Lease.save),
    # by a partial index: a lease far from expiry is never read.
    candidates = Lease.objects.filter(state=LeaseState.ACTIVE, next_notice_at__lte=now, expires_at__gt=now)
    for lease in candidates.select_related(*_LABEL_RELATED).order_by("next_notice_at", "pk"):
        due = _thresholds_due(lease, now)
        if not due:
            if not dry_run:  # LEASE_NOTICE_DAYS changed since: count down to what it says now
                Lease.objects.filter(pk=lease.pk, next_notice_at=lease.next_notice_at).update(
                    next_notice_at=next_notice_at(lease.expires_at, lease.notices_sent)
                )
            continue
        if dry_run:
            report.notices.append(f"{_label(lease)}: {count_of(min(due), 'day')} left")
            continue
        with transaction.atomic():
            locked = Lease.objects.select_for_update(skip_locked=True).filter(pk=lease.pk).first()
            if locked is None:
                continue
            due = _thresholds_due(locked, now)
            if not due:
                continue
            locked.notices_sent = sorted({*locked.notices_sent, *due})
            locked.save(update_fields=["notices_sent"])  # and the next notice's time
            resource = lease.resource
            audit_record(
                actor=None,
                verb="lease_notice",
                target=locked,
                resource=resource,
                request=resource.created_by_request,
                detail=f"{count_of(min(due), 'day')} before expiry, to {', '.join(notices.owner_and_team(resource))}",
            )
            mail = notices.expiry_notice(resource, locked.expires_at, min(due))
        # Reported as sent only once the mail backend accepted it (at the end of the pass).
        line = f"{_label(lease)}: {count_of(min(due), 'day')} left"
        if mail is None:
            report.errors.append(f"{line}: nobody to send the notice to (no owner or team member has an email address)")
        else:
            report.notice_mail[mail.pk] = line


def _owner_still_in_team(owner, group: str, cache: dict[int, set[str] | None]) -> bool:
    if owner.pk not in cache:
        cache[owner.pk] = _current_groups(owner)
    groups = cache[owner.pk]
    return groups is not None and owner.is_active and group in groups


def _current_groups(user) -> set[str] | None:
    """The user's groups, read from the directory when LDAP is configured; None when the account is gone."""
    # Directory accounts have no usable local password; local accounts are judged by their groups here.
    if "django_auth_ldap.backend.LDAPBackend" in settings.AUTHENTICATION_BACKENDS and not user.has_usable_password():
        from django_auth_ldap.backend import LDAPBackend

        refreshed = LDAPBackend().populate_user(user.get_username())
        if refreshed is None:
            return None
        user = refreshed
    return set(user.groups.values_list("name", flat=True))


def _owners_to_check(*, dry_run: bool, now: datetime) -> list[int]:
    """The owners this pass checks: every deactivated one, and the LEASEHOLD_HANDOVER_BATCH owners checked
    longest ago (never checked first). Each is recorded as checked (not in a dry run), so that every owner
    is checked at least once every ⌈owners ÷ batch⌉ passes, with one directory read each."""
    live = Resource.objects.filter(owner=OuterRef("pk")).exclude(state__in=Resource.TERMINAL)
    owners = get_user_model().objects.filter(Exists(live))
    deactivated = list(owners.filter(is_active=False).values_list("pk", flat=True))
    oldest = list(
        owners.filter(is_active=True)
        .order_by(F("owner_check__checked_at").asc(nulls_first=True), "pk")
        .values_list("pk", flat=True)[: settings.LEASEHOLD_HANDOVER_BATCH]
    )
    if not dry_run and oldest:
        OwnerCheck.objects.bulk_create(
            # In key order, so that two passes upserting overlapping batches lock rows in the same order.
            [OwnerCheck(user_id=pk, checked_at=now) for pk in sorted(oldest)],
            update_conflicts=True,
            unique_fields=["user"],
            update_fields=["checked_at"],
        )
    return deactivated + oldest


def hand_over_departed(*, dry_run: bool, report: ReclaimReport, now: datetime | None = None) -> None:
    """Resources whose owner left the team (or the directory) pass to the team, audited and notified.

    A pass checks a bounded batch of owners (`_owners_to_check`), each one's groups read once."""
    owners = _owners_to_check(dry_run=dry_run, now=now or database_now())
    if not owners:
        return
    live = Resource.objects.filter(owner_id__in=owners).exclude(state__in=Resource.TERMINAL)
    # One row per owner and team, not one per resource: an owner with many resources is checked once per team.
    pairs = list(live.order_by().values_list("owner_id", "team_id", "team__group__name").distinct())
    users = get_user_model().objects.in_bulk({owner for owner, _, _ in pairs})
    cache: dict[int, set[str] | None] = {}
    left = [Q(owner_id=o, team_id=t) for o, t, group in pairs if not _owner_still_in_team(users[o], group, cache)]
    if not left:
        return
    for resource in (
        live.filter(reduce(operator.or_, left)).select_related("owner", "team", "parent__team").order_by("pk")
    ):
        former = resource.owner.get_username()
        report.handed_over.append(f"{resource} of {former} → team {resource.team.slug}")
        if dry_run:
            continue
        with transaction.atomic():
            if Resource.objects.filter(pk=resource.pk, owner_id=resource.owner_id).update(owner=None) != 1:
                continue
            resource.owner = None
            audit_record(
                actor=None,
                verb="owner_left",
                target=resource,
                request=resource.created_by_request,
                detail=f"{former} is no longer in team {resource.team.slug}; the team owns it now",
            )
            notices.handover_notice(resource, former)


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
        lease = Lease.objects.select_related("resource").get(pk=lease_id)
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
    lease = Lease.objects.select_related("resource").get(pk=lease_id)
    counts = workloads.replica_counts(lease.resource, lease.quarantined_replicas)
    if counts != lease.quarantined_replicas:
        Lease.objects.filter(pk=lease_id, state=LeaseState.GRACE).update(quarantined_replicas=counts)
    return workloads.scale_to_zero(lease.resource)


def _ensure_backups(*, resource: Resource, now: datetime) -> tuple[bool, str]:
    """Start (or check) a backup Job for every database the deletion would destroy.

    Returns (all succeeded, note). A failed backup is audited and alerted once, and blocks deletion.
    """
    notes = []
    ready = True
    for database in backup.databases_to_back_up(resource):
        current = database.backups.filter(kind=BackupKind.DUMP).order_by("-started_at").first()
        # A failed backup is tried again at most hourly, so a broken backup volume alerts hourly, not per pass.
        finished = current.finished_at if current is not None else None
        retry = current is not None and current.state == BackupState.FAILED and finished is not None
        if current is None or (retry and finished is not None and finished <= now - BACKUP_RETRY_AFTER):
            current = _start_backup(database=database, now=now)
        if current.state == BackupState.RUNNING:
            outcome = backup.job_outcome(
                cluster.read(cluster.ObjectRef("batch/v1", "Job", current.job_namespace, current.job_name))
            )
            if outcome != BackupState.RUNNING:
                _finish_backup(current, outcome, now)
        if current.state != BackupState.SUCCEEDED:
            ready = False
        notes.append(f"backup of {database.name}: {current.state} ({current.location})")
    return ready, "; ".join(notes)


def _start_backup(*, database: Resource, now: datetime) -> Backup:
    location = backup.backup_location(backup.backup_path(database, now))
    try:
        password = backup.database_password(database)
    except ClusterError as exc:
        # Without the password (its Secret was deleted from the namespace, or cannot be read) there is
        # nothing to dump with: a failed backup like a refused Job — audited, alerted once, tried again
        # hourly, and nothing is deleted. Not an error to the caller of a release: the data is safe.
        job = backup.backup_manifests(database=database, password="", at=now)[-1]
        record = _record_job(database=database, job=job, kind=BackupKind.DUMP, location=location, now=now)
        _finish_backup(record, BackupState.FAILED, now, detail=f"the database's password could not be read: {exc}")
        return record
    manifests = backup.backup_manifests(database=database, password=password, at=now)
    return _launch_job(database=database, manifests=manifests, kind=BackupKind.DUMP, location=location, now=now)


def _record_job(*, database: Resource, job: dict, kind: str, location: str, now: datetime) -> Backup:
    return Backup.objects.create(
        resource=database,
        kind=kind,
        job_namespace=job["metadata"]["namespace"],
        job_name=job["metadata"]["name"],
        location=location,
        started_at=now,
    )


def _launch_job(*, database: Resource, manifests: list[dict], kind: str, location: str, now: datetime) -> Backup:
    """Record a dump or restore Job and apply it (its password Secret first); a Job the cluster refuses
    is recorded as failed, which alerts."""
    record = _record_job(database=database, job=manifests[-1], kind=kind, location=location, now=now)
    what = "backup" if kind == BackupKind.DUMP else "restore"
    try:
        for manifest in manifests:
            cluster.apply(manifest)
    except ClusterError as exc:
        _finish_backup(record, BackupState.FAILED, now, detail=f"the {what} Job could not be created: {exc}")
        return record
    audit_record(
        actor=None,
        verb=f"{what}_started",
        target=database,
        request=database.created_by_request,
        detail=f"Job {record.job_namespace}/{record.job_name} {'→' if kind == BackupKind.DUMP else '←'} {location}",
    )
    return record


def _finish_backup(record: Backup, outcome: str, now: datetime, detail: str = "") -> None:
    record.state = outcome
    record.finished_at = now
    record.detail = detail or f"Job {record.job_namespace}/{record.job_name} {outcome}"
    record.save()
    database = record.resource
    audit_record(
        actor=None,
        verb=f"{'backup' if record.kind == BackupKind.DUMP else 'restore'}_"
        f"{'succeeded' if outcome == BackupState.SUCCEEDED else 'failed'}",
        target=database,
        request=database.created_by_request,
        detail=f"{record.location}: {record.detail}",
    )
    if outcome == BackupState.FAILED:
        notices.backup_failed_alert(database, record.detail, restore=record.kind == BackupKind.RESTORE)
    # The password copy in the backup namespace is needed only while the Job runs.
    try:
        cluster.delete(cluster.ObjectRef("v1", "Secret", record.job_namespace, record.job_name))
    except ClusterError:
        log.warning("could not delete the backup Secret %s/%s", record.job_namespace, record.job_name)


def lease_reclaim(*, lease_id: int, now: datetime) -> tuple[bool, str]:
    """Back up, then delete a lease's objects, then mark lease, resource and request reclaimed.

    The lease is claimed (concurrent passes on several cron hosts skip it: each lease is reclaimed
    once) and no row lock is held while the cluster is called. Returns (done, note); not done while a
    backup runs or failed, or objects are still going away (the follow-up carries on). A pass does the
    same for many leases at once (`_reclaim_batch`).
    """
    token = _claim_lease(lease_id, state__in=[LeaseState.GRACE, LeaseState.RECLAIMING])
    if token is None:
        return False, "taken by another pass"
    try:
        if why := _reclaim_start([lease_id], now=now).get(lease_id):
            return False, why
        return _teardown_and_finish(lease_id=lease_id, token=token, now=now)
    finally:
        _release_lease(lease_id, token)


def _claim_leases(lease_ids: list[int], token: uuid.UUID) -> list[int]:
    """Claim the leases of a batch that are past grace or reclaiming and that no other pass holds, all
    with one token (each lease is still claimed on its own: see `_claim_lease`). Rows another
    transaction has locked right now are skipped, not waited for: the next pass or follow-up takes them."""
    now = timezone.now()
    with transaction.atomic():
        free = list(
            Lease.objects.select_for_update(skip_locked=True)
            .filter(pk__in=lease_ids, state__in=[LeaseState.GRACE, LeaseState.RECLAIMING])
            .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))
            .values_list("pk", flat=True)
        )
        Lease.objects.filter(pk__in=free).update(
            claim_token=token, claimed_until=now + timedelta(seconds=settings.LEASEHOLD_LEASE_CLAIM_SECONDS)
        )
    return free


def _reclaim_start(lease_ids: list[int], *, now: datetime) -> dict[int, str]:
    """Move claimed leases that are past grace, and their resources, to `reclaiming` (each audited; the
    changes still waiting for approval are withdrawn) in one short transaction that commits before
    anything is deleted: from then on they can no longer be extended. Locks leases before resources,
    each in key order, as every other writer of a lease does. Returns why a lease was not started
    ("still in grace"); a lease already reclaiming is simply carried on."""
    why: dict[int, str] = {}
    with transaction.atomic():
        due = []
        for lease in Lease.objects.select_for_update().filter(pk__in=lease_ids).order_by("pk"):
            if lease.state != LeaseState.GRACE:
                continue
            if lease.grace_until is None or lease.grace_until > now:
                why[lease.pk] = "still in grace"
            else:
                due.append(lease)
        if not due:
            return why
        resources = Resource.objects.select_for_update(of=("self",)).select_related("created_by_request")
        by_id = {r.pk: r for r in resources.filter(pk__in=[lease.resource_id for lease in due]).order_by("pk")}
        events = []
        for lease in due:
            resource = by_id[lease.resource_id]
            events += [_start_reclaim(lease, resource), _start_reclaim(resource, resource)]
        # The same rows and the same audit lines as `transition_apply` per object, written in three
        # statements for the batch instead of four per lease (the rows are locked: nothing else moves them).
        Lease.objects.filter(pk__in=[lease.pk for lease in due]).update(state=LeaseState.RECLAIMING)
        Resource.objects.filter(pk__in=list(by_id)).update(state=ResourceState.RECLAIMING, updated_at=timezone.now())
        AuditEvent.objects.bulk_create(events)
        # Most resources have no change waiting: one query finds the few that have.
        waiting = (
            ResourceRequest.objects.filter(resource_id__in=list(by_id), state=RequestState.PENDING_APPROVAL)
            .exclude(action=Action.CREATE)
            .values_list("resource_id", flat=True)
        )
        for resource_id in sorted(set(waiting)):
            followups_withdraw(resource=by_id[resource_id], reason=WITHDRAWN)
    return why


def _start_reclaim(obj: Lease | Resource, resource: Resource) -> AuditEvent:
    """Run the `start_reclaim` transition of a locked lease or resource in memory (the caller writes the
    rows) and return its audit line, as `transition_apply` would write it."""
    old = obj.state
    if not can_proceed(obj.start_reclaim):
        raise InvalidState(f"Cannot start reclaim a {obj._meta.verbose_name} that is {old}.")
    obj.start_reclaim()
    return AuditEvent(
        verb="reclaim_started",
        target_type=obj._meta.model_name or "",
        target_id=str(obj.pk),
        request=resource.created_by_request,
        resource=resource,
        from_state=old,
        to_state=obj.state,
    )


# What a teardown reads of a resource: its request, as rendered for the manifests kept for a restore.
_TEARDOWN_RELATED = ("created_by_request__team__group", "created_by_request__requester", "team", "parent", "owner")


@dataclass
class _Teardown:
    """One claimed lease on its way through a teardown: what was read before the cluster calls, and the
    outcome when it ended before them (a backup still running or failed)."""

    lease_id: int
    token: uuid.UUID
    keep: list[dict[str, Any]] = field(default_factory=list)
    backup_note: str = ""
    plan: TeardownPlan | None = None
    outcome: tuple[bool, str] | None = None
    error: ClusterError | None = None
    kept_now: bool = False  # `keep` was rendered now (not yet on the lease)


def _teardown_prepare(lease_ids: list[int], *, token: uuid.UUID, now: datetime) -> dict[int, _Teardown]:
    """The database side before the teardowns of claimed leases: backups first (a running or failed one
    ends that lease's teardown here), the manifests to keep for a restore, and the objects to remove.
    A handful of queries for the whole batch, not a handful per lease."""
    leases = list(
        Lease.objects.filter(pk__in=lease_ids)
        .select_related(*(f"resource__{r}" for r in _TEARDOWN_RELATED))
        .order_by("pk")
    )
    resources = [lease.resource for lease in leases]
    prefetch_related_objects(
        resources,
        Prefetch(
            "managed_objects",
            queryset=ManagedObject.objects.filter(deleted_at__isnull=True).order_by("pk"),
            to_attr="live_objects",
        ),
    )
    # Only databases, and namespaces with databases in them, have something to back up.
    with_databases = set(
        Resource.objects.filter(parent_id__in=[r.pk for r in resources if r.kind == Kind.NAMESPACE], kind=Kind.DATABASE)
        .exclude(state__in=Resource.TERMINAL)
        .values_list("parent_id", flat=True)
    )
    jobs = {}
    for lease in leases:
        resource = lease.resource
        job = jobs[lease.pk] = _Teardown(lease_id=lease.pk, token=token)
        if resource.kind == Kind.DATABASE or resource.pk in with_databases:
            try:
                backed_up, job.backup_note = _ensure_backups(resource=resource, now=now)
            except ClusterError as exc:  # this lease's backup could not be checked: the others go on
                job.error = exc
                continue
            if not backed_up:
                Lease.objects.filter(pk=lease.pk, claim_token=token).update(last_report=job.backup_note)
                job.outcome = (False, job.backup_note)
                continue
        job.keep = lease.last_manifests
        if not job.keep:
            job.keep, job.kept_now = _manifests_to_keep(resource), True
        job.plan = teardown_plan(resource, objects=resource.live_objects)
    return jobs


def _teardown_finish(finished: list[tuple[_Teardown, TeardownReport]], *, now: datetime) -> list[tuple[bool, str]]:
    """The database side after the cluster calls, in one transaction for the batch: the objects found
    gone are marked, each lease keeps its report; a lease with nothing pending any more is marked
    reclaimed with its resource and request (and the children that went with a namespace). A lease
    another pass took over meanwhile (its claim ran out) is left to that pass."""
    if not finished:
        return []
    outcomes: list[tuple[bool, str]] = []
    with transaction.atomic():
        gone = TeardownReport()
        for _, report in finished:
            gone.gone_rows += report.gone_rows
        teardown_record(gone)
        locked = Lease.objects.select_for_update().filter(
            pk__in=[job.lease_id for job, _ in finished], state=LeaseState.RECLAIMING
        )
        tokens = dict(locked.order_by("pk").values_list("pk", "claim_token"))
        waiting = []
        for job, report in finished:
            note = _teardown_note(job, report)
            if tokens.get(job.lease_id) != job.token:
                outcomes.append((False, "taken by another pass"))
            elif not report.complete:
                waiting.append((job, note))
                outcomes.append((False, note))
            else:
                lease = Lease.objects.get(pk=job.lease_id)  # locked above
                outcomes.append((True, _teardown_complete(lease, job, note, now)))
        _keep_reports(waiting)
    return outcomes


_KEEP_REPORT_AND_MANIFESTS = 'UPDATE "leases_lease" SET "last_report" = %s, "last_manifests" = %s WHERE "id" = %s'
_KEEP_REPORT = 'UPDATE "leases_lease" SET "last_report" = %s WHERE "id" = %s'


def _keep_reports(waiting: list[tuple[_Teardown, str]]) -> None:
    """Write each lease's report, and the manifests kept for a restore when they were rendered just now,
    in two statements for the batch. The caller holds the leases' locks and checked their claims. (The
    ORM's `bulk_update` builds a CASE expression per row and field: a third of a pass's time here.)"""
    prep = Lease._meta.get_field("last_manifests").get_db_prep_save
    first = [(note, prep(job.keep, connection), job.lease_id) for job, note in waiting if job.kept_now]
    again = [(note, job.lease_id) for job, note in waiting if not job.kept_now]
    with connection.cursor() as cursor:
        if first:
            cursor.executemany(_KEEP_REPORT_AND_MANIFESTS, first)
        if again:
            cursor.executemany(_KEEP_REPORT, again)


def _teardown_note(job: _Teardown, report: TeardownReport) -> str:
    return "; ".join(
        ([job.backup_note] if job.backup_note else [])
        + [f"deleted {', '.join(report.deleted)}"] * bool(report.deleted)
        + [f"pending {', '.join(report.pending)}"] * bool(report.pending)
        + [f"left alone {', '.join(report.refused)}"] * bool(report.refused)
    )


def _teardown_complete(lease: Lease, job: _Teardown, note: str, now: datetime) -> str:
    """Everything is gone: mark lease, resource and request reclaimed (the caller holds the lease's lock)."""
    lease.last_report = note
    lease.last_manifests = job.keep
    lease.save(update_fields=["last_report", "last_manifests"])
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
    _reclaim_children(namespace=resource, now=now)
    return note


def _teardown_and_finish(*, lease_id: int, token: uuid.UUID, now: datetime) -> tuple[bool, str]:
    """Back up, keep the manifests, delete the objects (outside any transaction, the lease claimed);
    when all are gone, mark everything reclaimed in one short transaction."""
    job = _teardown_prepare([lease_id], token=token, now=now)[lease_id]
    if job.error is not None:
        raise job.error
    if job.outcome is not None or job.plan is None:
        return job.outcome or (False, "")
    return _teardown_finish([(job, teardown_run(job.plan))], now=now)[0]


def _teardown_quietly(plan: TeardownPlan) -> TeardownReport | ClusterError:
    """One lease's cluster calls in a pass's batch: its error is its own, not the batch's."""
    try:
        return teardown_run(plan, concurrent=False)
    except ClusterError as exc:
        return exc


def _manifests_to_keep(resource: Resource) -> list[dict[str, Any]]:
    """The objects as rendered now, without any password: what a restore re-creates."""
    try:
        return resource_manifests(resource, with_secrets=False)
    except (ValueError, KeyError, InvalidState):
        return []


def _reclaim_children(*, namespace: Resource, now: datetime) -> None:
    """Databases and apps went with their namespace: record them reclaimed too."""
    detail = f"went with namespace {namespace.namespace_name}"
    for child in Resource.objects.select_for_update().filter(parent=namespace).exclude(state__in=Resource.TERMINAL):
        request = ResourceRequest.objects.select_for_update().get(pk=child.created_by_request_id)
        lease = Lease.objects.select_for_update().filter(resource=child).first()
        if lease is not None and lease.state in (LeaseState.ACTIVE, LeaseState.GRACE):
            transition_apply(
                lease, "start_reclaim", actor=None, verb="reclaim_started", resource=child, request=request
            )
        if lease is not None and lease.state == LeaseState.RECLAIMING:
            transition_apply(
                lease,
                "mark_reclaimed",
                actor=None,
                verb="lease_reclaimed",
                resource=child,
                request=request,
                at=now,
                detail=detail,
            )
        if child.state in (ResourceState.ACTIVE, ResourceState.GRACE):
            transition_apply(child, "start_reclaim", actor=None, verb="reclaim_started", request=request)
            followups_withdraw(resource=child, reason=WITHDRAWN)
        if child.state == ResourceState.RECLAIMING:
            transition_apply(child, "mark_reclaimed", actor=None, verb="reclaimed", request=request, detail=detail)
        child.managed_objects.filter(deleted_at__isnull=True).update(deleted_at=now)
        if request.state == RequestState.ACTIVE:
            transition_apply(request, "mark_reclaimed", actor=None, verb="reclaimed", resource=child)


def resource_release(*, resource: Resource, actor) -> tuple[bool, str]:
    """Give a resource back now: no grace; databases are backed up first (CONTRACT.md §3 release).

    When a backup is still running or the namespace still terminating, reclamation passes finish it.
    """
    if not _may_manage(actor, resource):
        raise NotAllowed("Only the owner's team can release this resource.")
    now = database_now()
    with transaction.atomic():
        lease = Lease.objects.select_for_update().filter(resource=resource).first()
        if lease is None or lease.state not in (LeaseState.ACTIVE, LeaseState.GRACE):
            raise InvalidState(f"Only an active resource can be released; this one is {resource.state}.")
        resource = Resource.objects.select_for_update().get(pk=resource.pk)
        request = resource.created_by_request
        transition_apply(lease, "start_reclaim", actor=actor, verb="released", resource=resource, request=request)
        transition_apply(resource, "start_reclaim", actor=actor, verb="released", request=request)
        followups_withdraw(resource=resource, reason=WITHDRAWN)
    token = _claim_lease(lease.pk, state=LeaseState.RECLAIMING)
    if token is None:
        return False, "a reclamation pass is already deleting it"
    try:
        return _teardown_and_finish(lease_id=lease.pk, token=token, now=now)
    except Unavailable as exc:
        # The release stands (it is recorded); the follow-up deletes once the cluster answers again.
        log.warning("release of %s: the cluster cannot be reached yet: %s", resource.pk, exc)
        return False, "the Kubernetes cluster cannot be reached right now; it is deleted as soon as it can be"
    finally:
        _release_lease(lease.pk, token)


def reclaim_pass(*, now: datetime | None = None, dry_run: bool = False) -> ReclaimReport:
    """One reclamation pass: notices, hand-overs, expired leases into grace (quarantined), and leases past
    grace backed up and reclaimed, at most RECLAIM_MAX_PER_RUN of them. Idempotent; safe in parallel.

    Mail that earlier attempts could not send is retried first; the mail this pass queues is sent at its
    end, after its changes committed, and what the mail backend refused is in the report's errors (and
    stays in the outbox for the next pass)."""
    now = now or database_now()
    report = ReclaimReport(now=now, dry_run=dry_run)
    # Before anything changes: a pass that cannot reach the cluster must not move a lease to a state the
    # cluster does not match. Without usable credentials it stops here (a configuration to fix, not a
    # passing fault); with an API server that does not answer it does only what needs no cluster.
    cluster_down = _cluster_unusable(dry_run=dry_run, report=report)
    _mail_retry_earlier(report=report)
    with notices.collecting() as queued:
        _reclaim_steps(now=now, dry_run=dry_run, report=report, cluster_down=cluster_down)
    if not dry_run:
        _mail_deliver_queued(report=report, mail_ids=queued)
    return report


def _mail_line(mail: OutgoingMail) -> str:
    return f"{mail.topic} to {', '.join(mail.recipients)}: {mail.subject.removeprefix('[Leasehold] ')} (mail {mail.pk})"


def _mail_retry_earlier(*, report: ReclaimReport) -> None:
    """Send the outbox's pending mail (what earlier passes or requests could not send), so that a refused
    notice goes out with the next pass."""
    if report.dry_run:
        report.earlier_mail.extend(_mail_line(m) for m in mail_pending()[: settings.LEASEHOLD_MAIL_MAX_PER_RUN])
        return
    delivery = mail_deliver_pending(limit=settings.LEASEHOLD_MAIL_MAX_PER_RUN)
    report.earlier_mail.extend(f"{_mail_line(m)}, attempt {m.attempts}" for m in delivery.sent)
    report.errors.extend(
        f"{_mail_line(m)}: still not sent after {m.attempts} attempt(s): {m.last_error}; retried by the next pass"
        for m in delivery.failed
    )
    if delivery.stopped and (left := mail_pending().count() - len(delivery.failed)) > 0:
        report.errors.append(f"{left} more pending mail not tried, the mail backend cannot be used: {delivery.stopped}")


def _mail_deliver_queued(*, report: ReclaimReport, mail_ids: list[int]) -> None:
    """Send the mail a pass queued, now that its transactions committed, and report what became of it:
    a notice counts as sent only once the mail backend accepted it; what it refused stays pending."""
    delivery = mail_deliver_pending(limit=len(mail_ids), ids=mail_ids)
    # Mail of a transaction that rolled back is gone; the rest is read back as it is now.
    for mail in OutgoingMail.objects.filter(pk__in=mail_ids).order_by("pk"):
        notice = report.notice_mail.get(mail.pk)
        if mail.state == MailState.SENT:
            if notice is not None:
                report.notices.append(notice)
            continue
        why = mail.last_error if mail.attempts else (delivery.stopped or "not tried yet: another run is sending it")
        report.errors.append(f"{notice or _mail_line(mail)}: {mail.topic} not sent: {why}; retried by the next pass")


def _cluster_unusable(*, dry_run: bool, report: ReclaimReport) -> bool:
    """Ask the API server whether it is ready (one GET /readyz). A live pass raises ClusterNotConfigured
    before anything changed; an unreachable or unready server is an error of the report, and True."""
    try:
        cluster.ping()
    except ClusterNotConfigured as exc:
        if not dry_run:
            raise
        report.errors.append(f"cluster: {exc}: a live pass stops before changing anything and does none of this")
        return True
    except ClusterError as exc:
        would = "would move" if dry_run else "moved"
        report.errors.append(
            f"cluster: {exc}: the pass {would} nothing into grace and deleted nothing (notices and hand-overs "
            "need no cluster); the next pass tries again"
        )
        return True
    return False


def _backup_storage_errors(report: ReclaimReport) -> None:
    """A dry run that would back up databases checks that the Jobs have somewhere to run and write: a
    missing backup namespace or volume claim fails every one of them."""
    try:
        problem = backup.backup_storage_problem()
    except ClusterError as exc:
        problem = f"cannot be checked: {exc}"
    if problem:
        report.errors.append(
            f"back up: {problem}: the {len(report.backups)} backup Job(s) would fail, so those databases (and "
            "the namespaces holding them) would not be deleted"
        )


def _reclaim_steps(*, now: datetime, dry_run: bool, report: ReclaimReport, cluster_down: bool = False) -> None:
    """The work of a pass: notices, hand-overs, grace, backups and reclamation (the last three only with
    a cluster that answers)."""
    send_notices(now=now, dry_run=dry_run, report=report)
    hand_over_departed(dry_run=dry_run, report=report, now=now)
    if cluster_down:
        return
    if not dry_run:
        check_restores(now=now, report=report)

    expired = Lease.objects.filter(state=LeaseState.ACTIVE, expires_at__lte=now)
    for lease in expired.select_related(*_LABEL_RELATED):
        if dry_run:
            report.to_grace.append(_label(lease))
            continue
        try:
            entered = lease_enter_grace(lease_id=lease.pk, now=now)
        except ClusterError as exc:
            report.errors.append(f"{_label(lease)}: quarantine: {exc}; still active, the next pass tries again")
            continue
        if entered:
            report.to_grace.append(_label(lease))
            lease.refresh_from_db()
            notices.quarantine_notice(lease.resource, lease.grace_until, len(lease.quarantined_replicas))
    if not dry_run:
        for lease in Lease.objects.filter(state=LeaseState.GRACE, grace_until__gt=now).select_related("resource"):
            try:
                lease_quarantine(lease_id=lease.pk)
            except ClusterError as exc:
                report.errors.append(f"{_label(lease)}: quarantine: {exc}")
        # Extended leases whose workloads could not be scaled back yet.
        unrestored = Lease.objects.filter(state=LeaseState.ACTIVE, expires_at__gt=now).exclude(quarantined_replicas={})
        for lease in unrestored.select_related("resource"):
            try:
                lease_restore_workloads(lease_id=lease.pk)
            except ClusterError as exc:
                report.errors.append(f"{_label(lease)}: restore of its workloads: {exc}")

    # The cap bounds new deletions only; leases already reclaiming are followed up below, cheaply.
    due = Lease.objects.filter(state=LeaseState.GRACE, grace_until__lte=now).order_by("grace_until", "pk")
    rows = _lease_rows(due)
    cap = max(0, settings.RECLAIM_MAX_PER_RUN)
    started = rows[:cap]
    report.deferred.extend(row.label for row in rows[cap:])
    if dry_run:
        _dry_run_reclaim(started, due.values("resource_id")[:cap], report)
        if report.backups:
            _backup_storage_errors(report)
        return
    _reclaim_into_report([(row.pk, row.label) for row in started], now, report)
    reclaim_follow(now=now, report=report, skip=[row.pk for row in started])


def _reclaim_into_report(leases: list[tuple[int, str]], now: datetime, report: ReclaimReport) -> None:
    """Reclaim (or follow up) `leases` (id and label), in batches of 4 × LEASEHOLD_K8S_CONCURRENCY.

    The database work stays in this thread, under the same claims, row locks (leases before resources,
    in key order) and audit lines as `lease_reclaim`; the cluster calls of a batch, which are
    independent, run in the background with at most LEASEHOLD_K8S_CONCURRENCY in flight, while this
    thread records the batch before and prepares the batch after (one batch's calls at a time)."""
    size = 4 * settings.LEASEHOLD_K8S_CONCURRENCY
    batches = [_ReclaimBatch(leases[i : i + size], now, report) for i in range(0, len(leases), size)]
    try:
        previous = None
        for batch in batches:
            batch.prepare()
            if previous is not None:
                previous.wait()
            batch.launch()
            if previous is not None:
                previous.finish()
            previous = batch
        if previous is not None:
            previous.wait()
            previous.finish()
    finally:
        for batch in batches:
            batch.release()


class _ReclaimBatch:
    """Some of a pass's leases: claimed, started and prepared in the caller's thread; torn down in a
    background thread (cluster calls only); recorded in the caller's thread."""

    def __init__(self, leases: list[tuple[int, str]], now: datetime, report: ReclaimReport) -> None:
        self.leases, self.now, self.report = leases, now, report
        self.token = uuid.uuid4()
        self.claimed: list[int] = []
        self.ready: list[tuple[str, _Teardown, TeardownPlan]] = []
        self.results: list[TeardownReport | ClusterError] = []
        self.failure: BaseException | None = None
        self.thread: threading.Thread | None = None

    def prepare(self) -> None:
        self.claimed = _claim_leases([pk for pk, _ in self.leases], self.token)
        mine = [(pk, label) for pk, label in self.leases if pk in set(self.claimed)]  # others: another pass's
        waiting = _reclaim_start(self.claimed, now=self.now)
        jobs = _teardown_prepare([pk for pk, _ in mine if pk not in waiting], token=self.token, now=self.now)
        for pk, label in mine:
            job = jobs.get(pk)
            if pk in waiting:
                _report_reclaim(label, (False, waiting[pk]), self.report)
            elif job is None:
                continue
            elif job.error is not None:
                _report_reclaim_error(label, job.error, self.report)
            elif job.plan is None:
                _report_reclaim(label, job.outcome or (False, ""), self.report)
            else:
                self.ready.append((label, job, job.plan))

    def launch(self) -> None:
        plans = [plan for _, _, plan in self.ready]

        def tear_down() -> None:
            try:
                self.results = cluster.map_bounded(_teardown_quietly, plans)
            except BaseException as exc:  # handed to the caller's thread in wait()
                self.failure = exc

        self.thread = threading.Thread(target=tear_down, name="leasehold-reclaim", daemon=True)
        self.thread.start()

    def wait(self) -> None:
        if self.thread is not None:
            self.thread.join()
            self.thread = None
        if self.failure is not None:
            failure, self.failure = self.failure, None
            raise failure

    def finish(self) -> None:
        finished = []
        for (label, job, _), result in zip(self.ready, self.results, strict=True):
            if isinstance(result, ClusterError):
                _report_reclaim_error(label, result, self.report)
            else:
                finished.append((label, job, result))
        outcomes = _teardown_finish([(job, result) for _, job, result in finished], now=self.now)
        for (label, _, _), outcome in zip(finished, outcomes, strict=True):
            _report_reclaim(label, outcome, self.report)

    def release(self) -> None:
        """Give the claims back, once no call of this batch is in flight any more."""
        if self.thread is not None:
            self.thread.join()
        _release_leases(self.claimed, self.token)
        self.claimed = []


def _report_reclaim_error(label: str, exc: ClusterError, report: ReclaimReport) -> None:
    log.warning("reclaiming %s failed: %s", label, exc)
    report.errors.append(f"{label}: {exc}")


def _report_reclaim(label: str, outcome: tuple[bool, str], report: ReclaimReport) -> None:
    done, note = outcome
    if note == "taken by another pass":
        return
    if "backup" in note and not done:
        report.backups.append(f"{label}: {note}")
    (report.reclaimed if done else report.in_progress).append(f"{label}: {note}" if note else label)
    if "backup" in note and "failed" in note:
        report.errors.append(f"{label}: {note} — nothing was deleted")


def reclaim_follow(
    *, now: datetime | None = None, report: ReclaimReport | None = None, skip: list[int] | None = None
) -> ReclaimReport:
    """Follow up leases that are reclaiming (a namespace terminating, a backup Job running, a release
    that could not finish at once): each is one cheap check (a read of the namespace or the Job), and
    the records are marked reclaimed as soon as the cluster is done. Runs every
    LEASEHOLD_RECLAIM_FOLLOW_SECONDS and at the end of every pass; never counted against the cap."""
    now = now or database_now()
    report = report or ReclaimReport(now=now, dry_run=False)
    check_restores(now=now, report=report)
    extensions_sweep()
    waiting = (
        Lease.objects.filter(state=LeaseState.RECLAIMING)
        .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=timezone.now()))
        .exclude(pk__in=skip or [])
    )
    follow = _lease_rows(waiting.order_by("pk")[: settings.LEASEHOLD_RECLAIM_FOLLOW_MAX])
    _reclaim_into_report([(row.pk, row.label) for row in follow], now, report)
    return report


# --- restore --------------------------------------------------------------------------------------


def resource_restore(*, resource: Resource, actor) -> ResourceRequest:
    """File a request that re-creates a reclaimed resource as it last ran (the frozen template and
    provider of its request); a database is then filled from its last successful backup."""
    if not _may_manage(actor, resource):
        raise NotAllowed("Only the owner's team can restore this resource.")
    if resource.state != ResourceState.RECLAIMED:
        raise InvalidState(f"Only a reclaimed resource can be restored; this one is {resource.state}.")
    old = resource.created_by_request
    spec = dict(resource.spec)
    if resource.parent is not None:
        # The namespace is found again by name: restore it first if it was reclaimed too.
        spec["namespace"] = resource.parent.namespace_name
    frozen = {**old.frozen, "restore_of": str(resource.pk)}
    if resource.kind == Kind.DATABASE:
        dump = (
            resource.backups.filter(kind=BackupKind.DUMP, state=BackupState.SUCCEEDED).order_by("-started_at").first()
        )
        if dump is not None:
            frozen["restore_from"] = dump.location
    request = request_submit(
        requester=actor,
        team=resource.team.slug,
        kind=resource.kind,
        name=resource.name,
        environment=resource.environment,
        lease_days=resource.lease_days,
        justification=f"restore of {resource} ({resource.pk})",
        spec=spec,
        frozen=frozen,
    )
    audit_record(actor=actor, verb="restore_requested", target=resource, request=old, detail=f"request {request.pk}")
    return request


def restore_start(*, resource_id) -> Backup | None:
    """Run pg_restore of the dump a recreated database was filed with (once)."""
    database = Resource.objects.select_related("created_by_request", "parent", "team").get(pk=resource_id)
    location = database.created_by_request.frozen.get("restore_from")
    if not location or database.backups.filter(kind=BackupKind.RESTORE).exists():
        return None
    now = database_now()
    manifests = backup.restore_manifests(
        database=database, password=backup.database_password(database), location=location, at=now
    )
    return _launch_job(database=database, manifests=manifests, kind=BackupKind.RESTORE, location=location, now=now)


def check_restores(*, now: datetime, report: ReclaimReport) -> None:
    """Record how running restore Jobs ended (a failure alerts like a failed backup)."""
    # A restore that could not start right after activation (cluster unreachable) starts here.
    waiting = (
        Resource.objects.filter(
            kind=Kind.DATABASE, state=ResourceState.ACTIVE, created_by_request__frozen__has_key="restore_from"
        )
        .exclude(backups__kind=BackupKind.RESTORE)
        .values_list("pk", flat=True)
    )
    for resource_id in waiting:
        try:
            restore_start(resource_id=resource_id)
        except ClusterError as exc:
            report.errors.append(f"restore of {resource_id}: {exc}")
    for record in Backup.objects.filter(kind=BackupKind.RESTORE, state=BackupState.RUNNING).select_related("resource"):
        try:
            job = cluster.read(cluster.ObjectRef("batch/v1", "Job", record.job_namespace, record.job_name))
        except ClusterError as exc:
            report.errors.append(f"restore of {record.resource.name}: {exc}")
            continue
        outcome = backup.job_outcome(job)
        if outcome != BackupState.RUNNING:
            _finish_backup(record, outcome, now)
