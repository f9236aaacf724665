"""The reclamation pass: its steps in order (mail, notices, hand-over, then per cluster grace, backups,
reclaim), the dry run, and following the leases still going away."""

from __future__ import annotations

import contextvars
import logging
import threading
import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from provisioning import cluster
from provisioning.cluster import using as on_cluster
from provisioning.errors import ClusterError, ClusterNotConfigured
from provisioning.models import ManagedObject
from provisioning.queues import queue_name
from provisioning.services.teardown import TeardownPlan, TeardownReport
from requests_app.models import (
    Cluster,
    MailState,
    OutgoingMail,
    Resource,
)
from requests_app.selectors import in_key_order, mail_pending
from requests_app.services import (
    mail_deliver_pending,
)

from .. import backup, notices
from ..kinds import LEASE_KINDS, backed_up_kinds
from ..models import Lease, LeaseState
from ..selectors import clusters_ready
from .expiry_notices import send_notices
from .extension import extensions_sweep, lease_restore_workloads
from .grace import _release_leases, lease_enter_grace, lease_quarantine
from .handover import hand_over_departed
from .opening import database_now
from .reclaim import (
    ReclaimStep,
    _claim_leases,
    _reclaim_start,
    _Teardown,
    _teardown_finish,
    _teardown_prepare,
    _teardown_quietly,
)
from .report import _LABEL_RELATED, Outcome, ReclaimReport, _label, _lease_rows, _LeaseRow, on_cluster_words
from .restore import check_restores, restore_clusters

log = logging.getLogger(__name__)


def _dry_run_reclaim(listed: list[_LeaseRow], resource_ids: list[Any], report: ReclaimReport) -> None:
    """What a dry run lists of the leases it would reclaim (`resource_ids`: their resources): the
    databases it would back up first and the objects it would delete, read in two queries as plain
    values."""
    objects: dict[Any, list[str]] = {row.resource_id: [] for row in listed}
    recorded = (
        ManagedObject.objects.filter(resource_id__in=resource_ids, deleted_at__isnull=True)
        .order_by("pk")
        .values_list("resource_id", "api_version", "kind", "namespace", "name")
    )
    for resource_id, api_version, kind, namespace, name in recorded:
        objects.setdefault(resource_id, []).append(str(cluster.ObjectRef(api_version, kind, namespace, name)))
    databases: dict[Any, list[tuple[Any, str]]] = {}
    children = (
        Resource.objects.filter(parent_id__in=resource_ids, kind__in=backed_up_kinds())
        .exclude(state__in=Resource.TERMINAL)
        .order_by("pk")
        .values_list("parent_id", "pk", "name")
    )
    for parent_id, pk, name in children:
        databases.setdefault(parent_id, []).append((pk, name))
    for row in listed:
        backed_up = LEASE_KINDS.get(row.kind).backed_up
        names = [(row.resource_id, row.name)] if backed_up else databases.get(row.resource_id, [])
        for pk, name in names:
            report.add(Outcome.BACKUP, f"database {row.namespace}/{name}", resource_id=pk)
        objects_of = ", ".join(objects[row.resource_id]) or "no objects"
        report.add(Outcome.RECLAIMED, row.label, resource_id=row.resource_id, detail=objects_of)


def reclaim_pass(
    *, now: datetime | None = None, dry_run: bool = False, cluster: str | None = None, fan_out: bool = False
) -> ReclaimReport:
    """One reclamation pass: notices, hand-overs, expired leases into grace (quarantined), and leases past
    grace backed up and reclaimed, at most RECLAIM_MAX_PER_RUN of them per cluster. Idempotent; safe in
    parallel.

    The work that needs no cluster (mail, notices, hand-overs) is done once; the cluster work is done per
    cluster, each inside `cluster.using(it)` on its own leases only, after a readiness check of its own: a
    cluster that does not answer is one error of the report, and its leases wait, as they are, for the
    next pass, while the others go on. `cluster`: only that cluster's work (ClusterNotConfigured when no
    cluster has that name); `fan_out`: the shared work here, then one `reclaim_cluster` task per cluster
    with work, on that cluster's queue (the beat's pass).

    Mail that earlier attempts could not send is retried first; the mail this pass queues is sent at its
    end, after its changes committed, and what the mail backend refused is in the report's errors (and
    stays in the outbox for the next pass)."""
    now = now or database_now()
    report = ReclaimReport(now=now, dry_run=dry_run)
    shared = cluster is None
    work = _work_by_cluster(now=now, dry_run=dry_run)
    clusters = [] if fan_out else _clusters_of(work, name=cluster)
    # Before anything changes: a pass that cannot reach a cluster must not move a lease of it to a state
    # the cluster does not match.
    unusable = _clusters_unusable(clusters, dry_run=dry_run, report=report)
    if shared:
        _mail_retry_earlier(report=report)
    with notices.collecting() as queued:
        if shared:
            send_notices(now=now, dry_run=dry_run, report=report)
            hand_over_departed(dry_run=dry_run, report=report, now=now)
            if not dry_run:
                extensions_sweep()
        for row in clusters:
            if row.pk not in unusable:
                with on_cluster(row):
                    _cluster_steps(now=now, dry_run=dry_run, report=report, on=row, work=work[row.pk])
    if not dry_run:
        _mail_deliver_queued(report=report, mail_ids=queued)
        if fan_out:
            _publish_cluster_passes(_clusters_of(work), report=report)
    return report


@dataclass
class _ClusterWork:
    """What a pass has to do on one cluster: its leases to move into grace, to keep quarantined, whose
    workloads to restore, and past grace (in order); a cluster with none of them but leases reclaiming or
    restores running is followed up."""

    expired: list[Lease] = field(default_factory=list)
    in_grace: list[Lease] = field(default_factory=list)
    unrestored: list[Lease] = field(default_factory=list)
    due: list[_LeaseRow] = field(default_factory=list)


def _work_by_cluster(*, now: datetime, dry_run: bool) -> dict[int, _ClusterWork]:
    """The pass's work, by the cluster of each lease's resource: one query per step for every cluster, on
    the leases' partial indexes, sorted here. (A filter on the cluster in SQL has PostgreSQL hash-join
    every resource row of a large cluster, where the partial indexes find the few leases that are due.)"""
    work: dict[int, _ClusterWork] = defaultdict(_ClusterWork)
    # Paged (in_key_order): PostgreSQL takes "active" and "expired" for independent and would join a scan
    # of every resource for the thousands it expects, where the partial index finds the few there are.
    expired = Lease.objects.filter(state=LeaseState.ACTIVE, expires_at__lte=now).select_related(*_LABEL_RELATED)
    for lease in in_key_order(expired, "expires_at"):
        work[lease.resource.cluster_id].expired.append(lease)
    if not dry_run:
        for lease in Lease.objects.filter(state=LeaseState.GRACE, grace_until__gt=now).select_related("resource"):
            work[lease.resource.cluster_id].in_grace.append(lease)
        # Extended leases whose workloads could not be scaled back yet.
        unrestored = Lease.objects.filter(state=LeaseState.ACTIVE, expires_at__gt=now).exclude(quarantined_replicas={})
        for lease in unrestored.select_related("resource"):
            work[lease.resource.cluster_id].unrestored.append(lease)
    due = Lease.objects.filter(state=LeaseState.GRACE, grace_until__lte=now)
    for row in _lease_rows(due, key="grace_until"):
        work[row.cluster_id or 0].due.append(row)
    if not dry_run:
        for cluster_id in clusters_following():  # followed up, maybe with nothing else to do there
            work.setdefault(cluster_id, _ClusterWork())
    return work


def _clusters_of(ids: Iterable[int], name: str | None = None) -> list[Cluster]:
    """The clusters a pass works on: the one named (ClusterNotConfigured when none has that name), else
    those with work, by name. A cluster without any is not asked anything."""
    if name is not None:
        row = Cluster.objects.filter(name=name).first()
        if row is None:
            known = ", ".join(Cluster.objects.order_by("name").values_list("name", flat=True)) or "none"
            raise ClusterNotConfigured(f"No cluster named {name!r} is registered (registered: {known}).")
        return [row]
    return list(Cluster.objects.filter(pk__in=list(ids)).order_by("name"))


def clusters_following() -> set[int]:
    """The clusters with leases reclaiming or restores to start or to check: what a follow-up does."""
    reclaiming = Lease.objects.filter(state=LeaseState.RECLAIMING).values_list("resource__cluster_id", flat=True)
    return set(reclaiming.order_by().distinct()) | restore_clusters()


def _publish_cluster_passes(clusters: list[Cluster], *, report: ReclaimReport) -> None:
    """Send one `reclaim_cluster` task per cluster with work to that cluster's queue, where a worker for
    that cluster runs it: a cluster that is down or slow holds up only its own."""
    from ..tasks import reclaim_cluster

    for row in clusters:
        try:
            reclaim_cluster.apply_async(args=[row.name], queue=queue_name(row.name), expires=CLUSTER_PASS_EXPIRES)
        except Exception as exc:  # any broker failure: the next pass sends it again
            log.warning("could not send the reclamation pass of cluster %s", row.name, exc_info=True)
            report.add(
                Outcome.ERROR,
                f"cluster {row.name}",
                detail=f"its pass could not be sent ({type(exc).__name__}); its leases wait for the next pass",
            )


# A cluster's pass that waited longer than the beat's interval (its worker down) is dropped: the next
# pass sends a fresh one, so that a backlog never runs the same work many times over.
CLUSTER_PASS_EXPIRES = 15 * 60


def _mail_line(mail: OutgoingMail) -> str:
    return f"{mail.topic} to {', '.join(mail.recipients)}: {mail.subject.removeprefix('[Leasehold] ')} (mail {mail.pk})"


def _mail_retry_earlier(*, report: ReclaimReport) -> None:
    """Send the outbox's pending mail (what earlier passes or requests could not send), so that a refused
    notice goes out with the next pass."""
    if report.dry_run:
        for mail in mail_pending()[: settings.LEASEHOLD_MAIL_MAX_PER_RUN]:
            report.add(Outcome.EARLIER_MAIL, _mail_line(mail))
        return
    delivery = mail_deliver_pending(limit=settings.LEASEHOLD_MAIL_MAX_PER_RUN)
    for mail in delivery.sent:
        report.add(Outcome.EARLIER_MAIL, _mail_line(mail), detail=f"attempt {mail.attempts}")
    for mail in delivery.failed:
        report.add(
            Outcome.ERROR,
            _mail_line(mail),
            detail=f"still not sent after {mail.attempts} attempt(s): {mail.last_error}; retried by the next pass",
        )
    if delivery.stopped and (left := mail_pending().count() - len(delivery.failed)) > 0:
        report.add(
            Outcome.ERROR,
            "",
            detail=f"{left} more pending mail not tried, the mail backend cannot be used: {delivery.stopped}",
        )


def _mail_deliver_queued(*, report: ReclaimReport, mail_ids: list[int]) -> None:
    """Send the mail a pass queued, now that its transactions committed, and report what became of it:
    a notice counts as sent only once the mail backend accepted it; what it refused stays pending."""
    delivery = mail_deliver_pending(limit=len(mail_ids), ids=mail_ids)
    # Mail of a transaction that rolled back is gone; the rest is read back as it is now.
    for mail in OutgoingMail.objects.filter(pk__in=mail_ids).order_by("pk"):
        notice = report.notice_mail.get(mail.pk)
        if mail.state == MailState.SENT:
            if notice is not None:
                report.entries.append(notice)
            continue
        why = mail.last_error if mail.attempts else (delivery.stopped or "not tried yet: another run is sending it")
        detail = f"{mail.topic} not sent: {why}; retried by the next pass"
        if notice is None:
            report.add(Outcome.ERROR, _mail_line(mail), detail=detail)
        else:
            report.add(Outcome.ERROR, notice.name, resource_id=notice.resource_id, detail=f"{notice.detail}: {detail}")


def _clusters_unusable(clusters: list[Cluster], *, dry_run: bool, report: ReclaimReport) -> set[int]:
    """Ask each cluster's API server whether it is ready (`clusters_ready`: all at once, so that one that
    does not answer holds up none of the others). Returns the clusters the pass leaves alone, each one an error
    of the report naming it. A live pass that has no usable credentials for any of its clusters raises
    ClusterNotConfigured before anything changed (a configuration to fix, not a passing fault)."""
    answers = clusters_ready(clusters)
    unconfigured = [exc for exc in answers if isinstance(exc, ClusterNotConfigured)]
    stops = bool(unconfigured) and len(unconfigured) == len(clusters)
    if stops and not dry_run:
        raise unconfigured[0]
    unusable = set()
    for row, exc in zip(clusters, answers, strict=True):
        if exc is None:
            continue
        unusable.add(row.pk)
        # The error may name the cluster already (a registered cluster's credentials): said once.
        why = str(exc).removeprefix(f"cluster {row.name}: ").rstrip(".")
        if isinstance(exc, ClusterNotConfigured):
            what = "a live pass stops before changing anything" if stops else "the pass does nothing on it"
            detail = f"{why}: {what}; its leases wait for the next pass"
        else:
            would = "would move" if dry_run else "moved"
            detail = (
                f"{why}: the pass {would} nothing of it into grace and deleted nothing on it (notices and "
                "hand-overs need no cluster); its leases wait for the next pass"
            )
        report.add(Outcome.ERROR, f"cluster {row.name}", detail=detail)
    return unusable


def _backup_storage_errors(report: ReclaimReport, backups: int) -> None:
    """A dry run that would back up databases checks that the Jobs have somewhere to run and write (on
    the cluster of the context): a missing backup namespace or volume claim fails every one of them."""
    if problem := backup.backup_storage_checked():
        report.add(
            Outcome.ERROR,
            f"back up{on_cluster_words(cluster.current().name)}",
            detail=f"{problem}: the {backups} backup Job(s) would fail, so those databases "
            "(and the namespaces holding them) would not be deleted",
        )


def _cluster_steps(*, now: datetime, dry_run: bool, report: ReclaimReport, on: Cluster, work: _ClusterWork) -> None:
    """The work of a pass on one cluster that answered, inside `cluster.using(on)`: restores, grace
    (quarantine), workloads of extended leases, backups, reclamation (at most RECLAIM_MAX_PER_RUN new
    ones on this cluster) and the follow-up."""
    if not dry_run:
        check_restores(now=now, report=report, on=on)

    for lease in work.expired:
        if dry_run:
            report.add(Outcome.TO_GRACE, _label(lease), resource_id=lease.resource_id)
            continue
        try:
            entered = lease_enter_grace(lease_id=lease.pk, now=now)
        except ClusterError as exc:
            detail = f"quarantine: {exc}; still active, the next pass tries again"
            report.add(Outcome.ERROR, _label(lease), resource_id=lease.resource_id, detail=detail)
            continue
        if entered:
            report.add(Outcome.TO_GRACE, _label(lease), resource_id=lease.resource_id)
            lease.refresh_from_db()
            if lease.grace_until is not None:  # set by entering grace
                notices.quarantine_notice(lease.resource, lease.grace_until, len(lease.quarantined_replicas))
    for lease in work.in_grace:
        try:
            lease_quarantine(lease_id=lease.pk)
        except ClusterError as exc:
            report.add(Outcome.ERROR, _label(lease), resource_id=lease.resource_id, detail=f"quarantine: {exc}")
    for lease in work.unrestored:
        try:
            lease_restore_workloads(lease_id=lease.pk)
        except ClusterError as exc:
            detail = f"restore of its workloads: {exc}"
            report.add(Outcome.ERROR, _label(lease), resource_id=lease.resource_id, detail=detail)

    # The cap bounds new deletions only; leases already reclaiming are followed up below, cheaply.
    cap = max(0, settings.RECLAIM_MAX_PER_RUN)
    started = work.due[:cap]
    for row in work.due[cap:]:
        report.add(Outcome.DEFERRED, row.label, resource_id=row.resource_id)
    if dry_run:
        before = len(report.of(Outcome.BACKUP))
        _dry_run_reclaim(started, [row.resource_id for row in started], report)
        if backups := len(report.of(Outcome.BACKUP)) - before:
            _backup_storage_errors(report, backups)
        return
    _reclaim_into_report(started, now, report)
    _follow_cluster(now=now, report=report, on=on, skip=[row.pk for row in started])


def _reclaim_into_report(leases: list[_LeaseRow], now: datetime, report: ReclaimReport) -> None:
    """Reclaim (or follow up) `leases`, in batches of 4 × LEASEHOLD_K8S_CONCURRENCY.

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

    def __init__(self, leases: list[_LeaseRow], now: datetime, report: ReclaimReport) -> None:
        self.leases, self.now, self.report = leases, now, report
        self.token = uuid.uuid4()
        self.claimed: list[int] = []
        self.ready: list[tuple[_LeaseRow, _Teardown, TeardownPlan]] = []
        self.results: list[TeardownReport | ClusterError] = []
        self.failure: BaseException | None = None
        self.thread: threading.Thread | None = None

    def prepare(self) -> None:
        self.claimed = _claim_leases([row.pk for row in self.leases], self.token)
        mine = [row for row in self.leases if row.pk in set(self.claimed)]  # others: another pass's
        waiting = _reclaim_start(self.claimed, now=self.now)
        jobs = _teardown_prepare([row.pk for row in mine if row.pk not in waiting], token=self.token, now=self.now)
        for row in mine:
            job = jobs.get(row.pk)
            if row.pk in waiting:
                _report_reclaim(row, ReclaimStep(False, waiting[row.pk]), self.report)
            elif job is None:
                continue
            elif job.error is not None:
                _report_reclaim_error(row, job.error, self.report)
            elif job.plan is None:
                _report_reclaim(row, job.outcome or ReclaimStep(False, ""), self.report)
            else:
                self.ready.append((row, job, job.plan))

    def launch(self) -> None:
        plans = [plan for _, _, plan in self.ready]

        def tear_down() -> None:
            try:
                self.results = cluster.map_bounded(_teardown_quietly, plans)
            except BaseException as exc:  # handed to the caller's thread in wait()
                self.failure = exc

        # In a copy of this context: the calls go to this pass's cluster (`cluster.using`).
        self.thread = threading.Thread(
            target=contextvars.copy_context().run, args=(tear_down,), name="leasehold-reclaim", daemon=True
        )
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
        for (row, job, _), result in zip(self.ready, self.results, strict=True):
            if isinstance(result, ClusterError):
                _report_reclaim_error(row, result, self.report)
            else:
                finished.append((row, job, result))
        outcomes = _teardown_finish([(job, result) for _, job, result in finished], now=self.now)
        for (row, _, _), outcome in zip(finished, outcomes, strict=True):
            _report_reclaim(row, outcome, self.report)

    def release(self) -> None:
        """Give the claims back, once no call of this batch is in flight any more."""
        if self.thread is not None:
            self.thread.join()
        _release_leases(self.claimed, self.token)
        self.claimed = []


def _report_reclaim_error(row: _LeaseRow, exc: ClusterError, report: ReclaimReport) -> None:
    log.warning("reclaiming %s failed: %s", row.label, exc)
    report.add(Outcome.ERROR, row.label, resource_id=row.resource_id, detail=str(exc))


def _report_reclaim(row: _LeaseRow, step: ReclaimStep, report: ReclaimReport) -> None:
    if step.taken:
        return
    if step.backed_up and not step.done:
        report.add(Outcome.BACKUP, row.label, resource_id=row.resource_id, detail=step.note)
    done = Outcome.RECLAIMED if step.done else Outcome.IN_PROGRESS
    report.add(done, row.label, resource_id=row.resource_id, detail=step.note)
    if step.backup_failed:
        report.add(
            Outcome.BACKUP_FAILED, row.label, resource_id=row.resource_id, detail=f"{step.note} — nothing was deleted"
        )


def reclaim_follow(
    *, now: datetime | None = None, report: ReclaimReport | None = None, cluster: str | None = None
) -> ReclaimReport:
    """Follow up leases that are reclaiming (a namespace terminating, a backup Job running, a release
    that could not finish at once): each is one cheap check (a read of the namespace or the Job), and
    the records are marked reclaimed as soon as the cluster is done. Runs every
    LEASEHOLD_RECLAIM_FOLLOW_SECONDS and at the end of every pass; never counted against the cap.

    Per cluster, like the pass: each inside `cluster.using(it)` on its own leases, after its own
    readiness check (one that does not answer is an error of the report and costs one GET /readyz;
    its leases wait). `cluster`: that cluster only; else the approved extensions whose task was lost
    are sent again first, then every cluster with leases reclaiming or restores is followed, one after
    another."""
    now = now or database_now()
    report = report or ReclaimReport(now=now, dry_run=False)
    if cluster is None:
        extensions_sweep()
    clusters = _clusters_of(clusters_following(), name=cluster)
    unusable = _clusters_unusable(clusters, dry_run=False, report=report)
    for row in clusters:
        if row.pk not in unusable:
            with on_cluster(row):
                _follow_cluster(now=now, report=report, on=row)
    return report


def _follow_cluster(*, now: datetime, report: ReclaimReport, on: Cluster, skip: list[int] | None = None) -> None:
    """The follow-up of one cluster's reclaiming leases and restores (inside `cluster.using(on)`)."""
    check_restores(now=now, report=report, on=on)
    waiting = (
        Lease.objects.filter(state=LeaseState.RECLAIMING, resource__cluster=on)
        .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=timezone.now()))
        .exclude(pk__in=skip or [])
    )
    follow = _lease_rows(waiting.order_by("pk")[: settings.LEASEHOLD_RECLAIM_FOLLOW_MAX])
    _reclaim_into_report(follow, now, report)
