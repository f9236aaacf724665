"""The reclamation and drift reports hold typed entries: the command, the metrics and the pass itself
classify an entry by its `outcome`, never by the words of its text."""

from __future__ import annotations

import io
from datetime import UTC, datetime

from django.core.management import call_command

from leases.passes import report_outcomes
from leases.services.reclaim import ReclaimStep
from leases.services.reclaim_pass import _report_reclaim
from leases.services.report import Outcome, ReclaimReport, _LeaseRow
from provisioning.services.reconcile import DriftEntry, DriftOutcome, ReconcileReport

NOW = datetime(2030, 1, 1, tzinfo=UTC)
ROW = _LeaseRow(7, "r-7", "app", "atlas-dev", "backup-failed-app", "app atlas-dev / backup-failed-app (resource r-7)")


def test_a_detail_that_reads_like_a_failed_backup_is_not_counted_as_one():
    report = ReclaimReport(now=NOW, dry_run=False)
    report.add(Outcome.IN_PROGRESS, "app x", resource_id="r-1", detail="backup of orders: failed (pvc://b/x)")
    report.add(
        Outcome.BACKUP_FAILED, "database y", resource_id="r-2", detail="backup of y: failed — nothing was deleted"
    )

    counts = report_outcomes(report)

    assert counts["backup_failed"] == 1 and counts["errors"] == 1 and counts["in_progress"] == 1
    assert [e.resource_id for e in report.of(Outcome.BACKUP_FAILED)] == ["r-2"]
    assert report.errors == ["database y: backup of y: failed — nothing was deleted"]


def test_a_pass_classifies_a_reclaim_by_its_step_not_by_the_objects_named_in_its_note():
    """An app named "backup-failed-app" whose objects are still going away: the old text match
    ("backup" in note and "failed" in note) listed it as a backup and as an error."""
    report = ReclaimReport(now=NOW, dry_run=False)
    note = "deleted Deployment atlas-dev/backup-failed-app; pending Service atlas-dev/backup-failed-app"

    _report_reclaim(ROW, ReclaimStep(False, note), report)

    assert [e.outcome for e in report.entries] == [Outcome.IN_PROGRESS]
    assert report_outcomes(report)["errors"] == 0 and report.backups == []


def test_a_failed_backup_is_a_backup_an_in_progress_and_an_error_entry():
    report = ReclaimReport(now=NOW, dry_run=False)

    _report_reclaim(ROW, ReclaimStep(False, "backup of orders: failed (x)", backed_up=True, backup_failed=True), report)
    _report_reclaim(ROW, ReclaimStep(False, "another pass's", taken=True), report)

    assert [e.outcome for e in report.entries] == [Outcome.BACKUP, Outcome.IN_PROGRESS, Outcome.BACKUP_FAILED]
    assert {e.resource_id for e in report.entries} == {"r-7"}
    assert report.errors == [f"{ROW.label}: backup of orders: failed (x) — nothing was deleted"]


def test_the_command_prints_sections_and_errors_by_outcome(monkeypatch):
    report = ReclaimReport(now=NOW, dry_run=False)
    report.add(Outcome.RECLAIMED, "namespace atlas-a (resource 1)", resource_id="1", detail="errors: backup failed")
    report.add(Outcome.ERROR, "cluster", detail="unreachable")
    monkeypatch.setattr("leases.management.commands.reclaim_leases.reclaim_pass_recorded", lambda **kwargs: report)
    out, err = io.StringIO(), io.StringIO()

    call_command("reclaim_leases", stdout=out, stderr=err)

    lines = out.getvalue().splitlines()
    assert lines[lines.index("reclaim (delete): 1") + 1] == "  - namespace atlas-a (resource 1): errors: backup failed"
    assert "errors: 1" in lines and "back up: 0" in lines
    assert err.getvalue().splitlines() == ["error: cluster: unreachable"]


def test_the_drift_report_counts_findings_by_outcome():
    report = ReconcileReport(checked=2)
    report.entries += [
        DriftEntry(DriftOutcome.ERROR, "r-1", "r-1", "the object was restored by someone else; 409"),
        DriftEntry(DriftOutcome.REAPPLIED, "r-2", "Secret atlas-dev/db", "was deleted outside Leasehold; re-applied"),
        DriftEntry(DriftOutcome.CLEANED, "r-3", "Deployment atlas-dev/web"),
    ]

    assert report.counts() == {"reapplied": 1, "restored": 0, "deleting": 0, "cleaned": 1, "error": 1}
    assert report.findings == ["Secret atlas-dev/db: was deleted outside Leasehold; re-applied"]
    assert report.errors == ["r-1: the object was restored by someone else; 409"]
    assert report.cleaned == ["Deployment atlas-dev/web"]
