"""Lease notices reach a real mail backend (issue 9): a pass counts a notice as sent only once the backend
accepted it; a refused notice is in the pass's errors, stays in the outbox, and goes out with the next pass.

These leases are made without a cluster (the pass then needs none: no lease expires here)."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from leases.models import Lease
from leases.services.opening import lease_open
from leases.services.reclaim_pass import reclaim_pass
from requests_app.models import AuditEvent, OutgoingMail
from tests.conftest import require_env
from tests.factories import active_namespace
from tests.integration.conftest import test_database_url

# Committed for real: the pass's transactions commit and the mail is sent after them, as in production.
# needs the Kubernetes API server (the lease pass runs in full)
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.integration]

FILE_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def lease(atlas, requester, teammate, settings) -> Lease:
    settings.LEASE_NOTICE_DAYS = [7, 1]
    return lease_open(resource=active_namespace(atlas, requester, name="checkout"))


def mail_files(directory) -> str:
    return "".join(p.read_text() for p in sorted(directory.iterdir())) if directory.exists() else ""


def test_a_pass_writes_the_notice_with_the_file_backend_set_by_email_backend_and_email_file_path(
    lease, settings, tmp_path
):
    settings.EMAIL_BACKEND = FILE_BACKEND
    settings.EMAIL_FILE_PATH = str(tmp_path / "mail")
    report = reclaim_pass(now=lease.expires_at - timedelta(days=6))
    assert report.errors == []
    assert len(report.notices) == 1 and "7 days left" in report.notices[0]
    assert "notify: 1" in report.lines()
    written = mail_files(tmp_path / "mail")
    assert "Subject: [Leasehold] namespace atlas-checkout expires in 7 days" in written
    assert "dana@example.org" in written and "tom@example.org" in written
    assert f"/resources/{lease.resource_id}/" in written
    mail = OutgoingMail.objects.get()
    assert (mail.state, mail.attempts, mail.topic) == ("sent", 1, "expiry notice")
    assert mail.resource_id == lease.resource_id


def test_a_notice_the_backend_cannot_send_is_reported_and_sent_by_the_next_pass(lease, settings, tmp_path):
    # Issue 9 as reported: the file backend chosen, EMAIL_FILE_PATH missing (TypeError on opening).
    settings.EMAIL_BACKEND = FILE_BACKEND
    if hasattr(settings, "EMAIL_FILE_PATH"):
        del settings.EMAIL_FILE_PATH
    now = lease.expires_at - timedelta(days=6)
    first = reclaim_pass(now=now)
    assert first.notices == []
    assert "notify: 0" in first.lines()
    (error,) = first.errors
    assert "7 days left: expiry notice not sent: TypeError" in error
    assert error.endswith("; retried by the next pass")
    mail = OutgoingMail.objects.get()
    assert (mail.state, mail.attempts) == ("pending", 1)
    lease.refresh_from_db()
    assert lease.notices_sent == [7]  # the notice exists (queued): never queued twice
    failed = AuditEvent.objects.get(verb="notification_failed")
    assert failed.resource_id == lease.resource_id and "TypeError" in failed.detail

    settings.EMAIL_FILE_PATH = str(tmp_path / "mail")
    second = reclaim_pass(now=now + timedelta(minutes=15))
    assert second.errors == [] and second.notices == []
    (retried,) = second.earlier_mail
    assert retried.startswith("expiry notice to dana@example.org, tom@example.org") and retried.endswith("attempt 2")
    assert mail_files(tmp_path / "mail").count("expires in 7 days") == 1
    mail.refresh_from_db()
    assert (mail.state, mail.attempts) == ("sent", 2)
    assert AuditEvent.objects.filter(verb="notification_sent", resource=lease.resource).count() == 1
    assert OutgoingMail.objects.count() == 1


@pytest.mark.parametrize(
    ("command", "reply"),
    [("RCPT", "550 5.1.1 <dana@example.org>: Recipient address rejected"), ("DATA", "451 4.3.0 Try again later")],
)
def test_a_notice_the_mail_server_refuses_is_not_marked_sent_and_goes_out_with_the_next_pass(
    lease, smtp_server, command, reply
):
    smtp_server.refuse(command, reply)
    now = lease.expires_at - timedelta(days=6)
    first = reclaim_pass(now=now)
    assert first.notices == []
    (error,) = first.errors
    assert "7 days left: expiry notice not sent: SMTP" in error and reply.split()[0] in error
    assert OutgoingMail.objects.get().state == "pending"
    assert smtp_server.received == []

    second = reclaim_pass(now=now + timedelta(minutes=15))
    assert second.errors == []
    assert len(second.earlier_mail) == 1
    (received,) = smtp_server.received
    assert received["Subject"] == "[Leasehold] namespace atlas-checkout expires in 7 days"
    assert received["To"] == "dana@example.org, tom@example.org"
    assert OutgoingMail.objects.get().state == "sent"

    third = reclaim_pass(now=now + timedelta(minutes=30))  # nothing is sent twice
    assert (third.notices, third.earlier_mail, third.errors) == ([], [], [])
    assert len(smtp_server.received) == 1


def test_the_next_threshold_is_a_new_notice_while_the_first_is_still_retried(lease, smtp_server):
    smtp_server.refuse("RCPT", "450 4.2.1 Mailbox busy", mails=3)
    reclaim_pass(now=lease.expires_at - timedelta(days=6))  # the 7-day notice: refused
    report = reclaim_pass(now=lease.expires_at - timedelta(hours=20))  # its retry refused, the 1-day one too
    assert len(report.errors) == 2 and report.notices == []
    report = reclaim_pass(now=lease.expires_at - timedelta(hours=19))
    assert report.errors == [] and len(report.earlier_mail) == 2
    assert sorted(m["Subject"].rsplit(" in ", 1)[1] for m in smtp_server.received) == ["1 day", "7 days"]


def test_a_dry_run_lists_the_mail_it_would_retry_and_sends_nothing(lease, unreachable_smtp):
    now = lease.expires_at - timedelta(days=6)
    reclaim_pass(now=now)
    report = reclaim_pass(now=now, dry_run=True)
    assert len(report.earlier_mail) == 1 and "would send mail queued earlier (retries): 1" in report.lines()
    assert OutgoingMail.objects.get().attempts == 1


def test_a_mail_server_that_is_down_is_tried_once_per_pass(lease, atlas, requester, unreachable_smtp):
    other = lease_open(resource=active_namespace(atlas, requester, name="payments"))
    assert other.expires_at - lease.expires_at < timedelta(minutes=1)
    report = reclaim_pass(now=lease.expires_at - timedelta(days=6))
    assert report.notices == []
    assert len(report.errors) == 2
    assert all("not sent: ConnectionRefusedError" in e for e in report.errors)
    attempts = sorted(OutgoingMail.objects.values_list("attempts", flat=True))
    assert attempts == [0, 1]  # the second was not tried against a server that refused the connection


def reclaim_command(now, **environ: str) -> subprocess.CompletedProcess:
    """`manage.py reclaim_leases` in its own process on the test database, with these mail variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EMAIL_", "DEFAULT_FROM_EMAIL"))}
    env.update({"DATABASE_URL": test_database_url(), **environ})
    return subprocess.run(  # noqa: S603  (our own interpreter and command)
        [sys.executable, "manage.py", "reclaim_leases", "--now", now.isoformat()],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.integration
def test_the_reclaim_command_sends_the_notice_through_email_backend_and_email_file_path(lease, tmp_path):
    """Issue 9 as reported: the file backend set in the environment, and `notify: 1` with no mail."""
    require_env("DATABASE_URL")
    now = lease.expires_at - timedelta(days=6)
    half = reclaim_command(now, EMAIL_BACKEND=FILE_BACKEND)  # no EMAIL_FILE_PATH: refused at start-up
    assert half.returncode != 0 and "EMAIL_FILE_PATH must be set" in half.stderr
    assert not OutgoingMail.objects.exists()

    done = reclaim_command(now, EMAIL_BACKEND=FILE_BACKEND, EMAIL_FILE_PATH=str(tmp_path / "mail"))
    assert done.returncode == 0, done.stderr
    assert "notify: 1" in done.stdout.splitlines() and "error:" not in done.stderr
    assert "Subject: [Leasehold] namespace atlas-checkout expires in 7 days" in mail_files(tmp_path / "mail")
    assert OutgoingMail.objects.get().state == "sent"
