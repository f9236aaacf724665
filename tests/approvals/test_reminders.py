"""Reminders and escalation, driven by an injected clock: when each is due, who is told, what is audited."""

from __future__ import annotations

import datetime

import pytest

from approvals.selectors import steps_decidable_by
from approvals.services import approvals_nudge, step_decide
from approvals.tasks import nudge_waiting_approvals
from requests_app.models import AuditEvent

from .conftest import age_step, pending_step

pytestmark = pytest.mark.django_db

H = datetime.timedelta(hours=1)
S = datetime.timedelta(seconds=1)
ESCALATING = "rules:\n- {name: r, steps: [{name: platform, group: platform-approvers, escalate_to: platform-leads}]}\n"


@pytest.fixture
def waiting(file_request, approver, second_approver, mailoutbox):
    """A step pending since a fixed moment; returns (step, opened_at)."""
    step = pending_step(file_request())
    opened = age_step(step, 0)
    mailoutbox.clear()
    return step, opened


def test_no_reminder_before_the_step_waited_the_reminder_delay(waiting, mailoutbox):
    step, opened = waiting
    assert approvals_nudge(now=opened + 24 * H).reminded == []
    assert mailoutbox == []
    assert not AuditEvent.objects.filter(verb="step_reminded").exists()


def test_a_step_that_waited_longer_than_the_delay_reminds_its_approvers_once(
    waiting, mailoutbox, django_capture_on_commit_callbacks
):
    step, opened = waiting
    with django_capture_on_commit_callbacks(execute=True):
        assert approvals_nudge(now=opened + 24 * H + S).reminded == [str(step.pk)]
    assert sorted(m.to[0] for m in mailoutbox) == ["frank@example.org", "paula@example.org"]
    assert f"/requests/{step.request_id}/" in mailoutbox[0].body
    assert "Reminder" in mailoutbox[0].subject
    event = AuditEvent.objects.get(verb="step_reminded")
    assert event.request_id == step.request_id and "platform: reminder #1 to platform-approvers" in event.detail
    # The same pass run again, or an hour later, sends nothing new.
    assert approvals_nudge(now=opened + 24 * H + S).reminded == []
    assert approvals_nudge(now=opened + 25 * H).reminded == []


def test_reminders_repeat_every_reminder_delay(waiting):
    step, opened = waiting
    approvals_nudge(now=opened + 25 * H)
    assert approvals_nudge(now=opened + 49 * H).reminded == []
    assert approvals_nudge(now=opened + 49 * H + S).reminded == [str(step.pk)]
    assert AuditEvent.objects.filter(verb="step_reminded").count() == 2


def test_the_reminder_delay_is_a_setting(waiting, settings):
    step, opened = waiting
    settings.APPROVAL_REMINDER_HOURS = 2
    assert approvals_nudge(now=opened + 2 * H + S).reminded == [str(step.pk)]


def test_decided_or_cancelled_steps_are_not_nudged(file_request, requester, approver):
    from requests_app.services import request_cancel

    decided, cancelled = pending_step(file_request()), pending_step(file_request())
    step_decide(step_id=decided.pk, user=approver, verdict="approve")
    request_cancel(request=cancelled.request, actor=requester)
    now = age_step(decided, 100)
    age_step(cancelled, 100, now=now)
    result = approvals_nudge(now=now)
    assert (result.reminded, result.escalated) == ([], [])


def test_a_step_escalates_once_after_the_escalation_delay(
    load, file_request, approver, platform_lead, mailoutbox, django_capture_on_commit_callbacks
):
    load(ESCALATING)
    step = pending_step(file_request())
    opened = age_step(step, 0)
    assert approvals_nudge(now=opened + 48 * H).escalated == []
    assert not steps_decidable_by(platform_lead).exists()
    mailoutbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        result = approvals_nudge(now=opened + 48 * H + S)
    assert result.escalated == [str(step.pk)]
    assert result.reminded == []  # the escalation notice is this pass's nudge
    assert [m.to for m in mailoutbox] == [["pete@example.org"]]
    assert "Escalated to platform-leads" in mailoutbox[0].subject
    assert f"/requests/{step.request_id}/" in mailoutbox[0].body
    event = AuditEvent.objects.get(verb="step_escalated")
    assert "platform-leads may decide it now" in event.detail
    assert approvals_nudge(now=opened + 49 * H).escalated == []
    # The escalation group may decide the step now.
    assert list(steps_decidable_by(platform_lead)) == [step]
    step_decide(step_id=step.pk, user=platform_lead, verdict="approve", comment="unblocking")
    step.request.refresh_from_db()
    assert step.request.state == "approved"


def test_a_step_without_an_escalation_group_is_only_reminded(file_request):
    step = pending_step(file_request())
    opened = age_step(step, 0)
    result = approvals_nudge(now=opened + 72 * H)
    assert (result.escalated, result.reminded) == ([], [str(step.pk)])


def test_the_escalation_delay_is_a_setting(load, file_request, settings):
    load(ESCALATING)
    settings.APPROVAL_ESCALATION_HOURS = 4
    step = pending_step(file_request())
    opened = age_step(step, 0)
    assert approvals_nudge(now=opened + 4 * H + S).escalated == [str(step.pk)]


def test_the_periodic_task_runs_a_pass(file_request):
    step = pending_step(file_request())
    age_step(step, 30)
    assert nudge_waiting_approvals() == {"reminded": 1, "escalated": 0}
    assert AuditEvent.objects.filter(verb="step_reminded").count() == 1
