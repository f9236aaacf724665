"""Emails: approvers of a newly pending step, the requester on every decision, each with a link to the
request page; a mail server that fails never loses a decision, and what it refused is retried."""

from __future__ import annotations

import socket

import pytest

from approvals.services import step_decide
from requests_app.models import AuditEvent, OutgoingMail, ResourceRequest
from requests_app.tasks import deliver_pending_mail

from .conftest import pending_step

pytestmark = pytest.mark.django_db


@pytest.fixture
def no_provisioning():
    """Executing on-commit callbacks would also enqueue provisioning for an approved request, which is not
    what these tests are about (and, without a broker, would run it in-process against a cluster)."""
    from django_fsm.signals import post_transition

    from provisioning.receivers import enqueue_on_approval

    assert post_transition.disconnect(sender=ResourceRequest, dispatch_uid="provisioning.enqueue_on_approval")
    yield
    post_transition.connect(
        enqueue_on_approval, sender=ResourceRequest, dispatch_uid="provisioning.enqueue_on_approval"
    )


def link(request) -> str:
    return f"http://localhost:8000/requests/{request.pk}/"


def test_the_approvers_of_a_newly_pending_step_are_emailed_with_a_link(
    file_request, approver, second_approver, mailoutbox, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        request = file_request()
    assert sorted(m.to[0] for m in mailoutbox) == ["frank@example.org", "paula@example.org"]
    assert all(link(request) in m.body and "Approval needed (platform)" in m.subject for m in mailoutbox)


def test_the_next_steps_approvers_are_emailed_when_a_step_is_approved(
    file_request, lead, approver, security, mailoutbox, django_capture_on_commit_callbacks
):
    request = file_request(environment="prod")
    with django_capture_on_commit_callbacks(execute=True):
        step_decide(step_id=pending_step(request).pk, user=lead, verdict="approve", comment="ok")
    by_recipient = {m.to[0]: m for m in mailoutbox}
    assert set(by_recipient) == {"dana@example.org", "frank@example.org"}
    assert "Approved by lena" in by_recipient["dana@example.org"].subject
    assert "Comment: ok" in by_recipient["dana@example.org"].body
    assert link(request) in by_recipient["dana@example.org"].body
    assert "Approval needed (platform)" in by_recipient["frank@example.org"].subject


def test_the_requester_hears_of_every_decision(
    load, file_request, approver, second_approver, mailoutbox, django_capture_on_commit_callbacks, no_provisioning
):
    load("rules:\n- {name: q, steps: [{name: platform, group: platform-approvers, required: 2}]}\n")
    request = file_request()
    step = pending_step(request)
    for user in (approver, second_approver):
        with django_capture_on_commit_callbacks(execute=True):
            step_decide(step_id=step.pk, user=user, verdict="approve")
    to_requester = [m for m in mailoutbox if m.to == ["dana@example.org"]]
    assert [m.subject.split(":")[0] for m in to_requester] == [
        "[Leasehold] Approved by frank",
        "[Leasehold] Approved by paula",
    ]
    assert "The request is now approved" in to_requester[-1].body


def test_the_requester_hears_of_a_rejection_with_its_reason(
    file_request, approver, mailoutbox, django_capture_on_commit_callbacks
):
    request = file_request()
    with django_capture_on_commit_callbacks(execute=True):
        step_decide(step_id=pending_step(request).pk, user=approver, verdict="reject", comment="use the shared one")
    (mail,) = mailoutbox
    assert mail.to == ["dana@example.org"] and "Rejected by frank" in mail.subject
    assert "use the shared one" in mail.body and "rejected" in mail.body


@pytest.fixture
def unreachable_mail_server(settings):
    """A real SMTP backend pointed at a loopback port where nothing listens."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", port, 2
    return port


def test_a_failing_mail_server_never_loses_a_decision(
    api, file_request, approver, unreachable_mail_server, django_capture_on_commit_callbacks
):
    request = file_request()
    with django_capture_on_commit_callbacks(execute=True):
        response = api.as_(approver).post(
            f"/api/v1/approvals/{pending_step(request).pk}/reject/", {"comment": "no"}, format="json"
        )
    assert response.status_code == 200
    assert ResourceRequest.objects.get(pk=request.pk).state == "rejected"
    failed = AuditEvent.objects.get(request=request, verb="notification_failed")
    assert failed.detail.startswith("decision notice to dana@example.org: ConnectionRefusedError")


def test_a_notice_the_mail_server_refuses_is_retried_until_it_accepts_it(
    file_request, approver, smtp_server, django_capture_on_commit_callbacks
):
    request = file_request()
    smtp_server.refuse("RCPT", "550 5.7.1 Relaying denied")
    with django_capture_on_commit_callbacks(execute=True):
        step_decide(step_id=pending_step(request).pk, user=approver, verdict="reject", comment="no")
    failed = AuditEvent.objects.get(request=request, verb="notification_failed")
    assert failed.detail.startswith("decision notice to dana@example.org: SMTPRecipientsRefused")
    assert smtp_server.received == []
    mail = OutgoingMail.objects.get(request_id=request.pk)
    assert (mail.state, mail.attempts) == ("pending", 1)

    assert deliver_pending_mail() == {"sent": 1, "failed": 0}  # the periodic retry
    (received,) = smtp_server.received
    assert received["To"] == "dana@example.org" and "Rejected by frank" in received["Subject"]
    assert AuditEvent.objects.filter(request=request, verb="notification_sent").count() == 1
    assert deliver_pending_mail() == {"sent": 0, "failed": 0}
