"""Backups before deletion: starting a database's backup Job, recording it, and its outcome.
(The Job's manifests are `leases.backup`.)"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from provisioning import cluster
from provisioning.errors import ClusterError
from requests_app.models import (
    Resource,
)
from requests_app.services import (
    audit_record,
)

from .. import backup, notices
from ..models import Backup, BackupKind, BackupState

log = logging.getLogger(__name__)


BACKUP_RETRY_AFTER = timedelta(hours=1)


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
