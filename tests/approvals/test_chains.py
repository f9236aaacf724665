"""Chains: steps in order, quorum from distinct members, one rejection rejects, all of it audited."""

from __future__ import annotations

import pytest

from approvals.models import Decision
from approvals.selectors import steps_decidable_by
from approvals.services import step_decide
from requests_app.errors import InvalidState, ValidationFailed
from requests_app.models import AuditEvent
from tests.factories import UserFactory

from .conftest import pending_step, steps_of

pytestmark = pytest.mark.django_db

QUORUM = "rules:\n- {name: quorum, steps: [{name: platform, group: platform-approvers, required: 2}]}\n"


def test_one_approval_completes_a_one_step_chain(file_request, approver):
    request = file_request()
    step_decide(step_id=pending_step(request).pk, user=approver, verdict="approve", comment="fine")
    request.refresh_from_db()
    assert request.state == "approved"
    assert steps_of(request) == [("platform", "platform-approvers", 1, "approved")]
    assert AuditEvent.objects.filter(request=request, verb="approved").count() == 1
    assert AuditEvent.objects.get(request=request, verb="step_approved").detail == "platform: frank: fine"


def test_a_quorum_of_two_needs_two_distinct_approvers(load, file_request, approver, second_approver):
    load(QUORUM)
    request = file_request()
    step = pending_step(request)
    step_decide(step_id=step.pk, user=approver, verdict="approve")
    request.refresh_from_db()
    assert (request.state, pending_step(request).pk) == ("pending_approval", step.pk)
    with pytest.raises(InvalidState, match="already been decided"):
        step_decide(step_id=step.pk, user=approver, verdict="approve")
    assert Decision.objects.filter(step=step).count() == 1
    step_decide(step_id=step.pk, user=second_approver, verdict="approve")
    request.refresh_from_db()
    assert request.state == "approved"


def test_a_three_step_prod_chain_runs_in_order(file_request, lead, approver, security, second_security):
    request = file_request(environment="prod")
    platform = request.approval_steps.get(name="platform")
    # The platform approvers cannot jump the queue: their step waits for the team lead.
    assert not steps_decidable_by(approver).exists()
    with pytest.raises(InvalidState):
        step_decide(step_id=platform.pk, user=approver, verdict="approve")

    step_decide(step_id=pending_step(request).pk, user=lead, verdict="approve")
    assert [s[3] for s in steps_of(request)] == ["approved", "pending", "waiting"]
    assert list(steps_decidable_by(approver)) == [platform]
    step_decide(step_id=platform.pk, user=approver, verdict="approve")
    security_step = pending_step(request)
    assert security_step.name == "security"
    step_decide(step_id=security_step.pk, user=security, verdict="approve")
    request.refresh_from_db()
    assert request.state == "pending_approval"
    step_decide(step_id=security_step.pk, user=second_security, verdict="approve", comment="reviewed")
    request.refresh_from_db()
    assert request.state == "approved"
    assert [s[3] for s in steps_of(request)] == ["approved", "approved", "approved"]
    opened = AuditEvent.objects.filter(request=request, verb="step_opened").values_list("detail", flat=True)
    assert list(opened) == [
        "team-lead (team-atlas-leads)",
        "platform (platform-approvers)",
        "security (security-approvers)",
    ]


def test_one_rejection_rejects_the_request_and_skips_the_rest(file_request, lead):
    request = file_request(environment="prod")
    step_decide(step_id=pending_step(request).pk, user=lead, verdict="reject", comment="not this quarter")
    request.refresh_from_db()
    assert request.state == "rejected"
    assert [s[3] for s in steps_of(request)] == ["rejected", "skipped", "skipped"]
    assert AuditEvent.objects.get(request=request, verb="rejected").detail == "team-lead: not this quarter"


def test_a_rejection_in_a_quorum_step_rejects_at_once(load, file_request, approver, second_approver):
    load(QUORUM)
    request = file_request()
    step = pending_step(request)
    step_decide(step_id=step.pk, user=approver, verdict="approve")
    step_decide(step_id=step.pk, user=second_approver, verdict="reject", comment="too big")
    request.refresh_from_db()
    assert request.state == "rejected"


@pytest.mark.parametrize("comment", ["", "   "])
def test_a_rejection_needs_a_comment(file_request, approver, comment):
    request = file_request()
    with pytest.raises(ValidationFailed) as excinfo:
        step_decide(step_id=pending_step(request).pk, user=approver, verdict="reject", comment=comment)
    assert "comment" in excinfo.value.errors
    request.refresh_from_db()
    assert request.state == "pending_approval"
    assert not Decision.objects.exists()


def test_an_unknown_verdict_is_refused(file_request, approver):
    with pytest.raises(ValidationFailed):
        step_decide(step_id=pending_step(file_request()).pk, user=approver, verdict="maybe")


def test_a_cancelled_request_cannot_be_decided(file_request, requester, approver):
    from requests_app.services import request_cancel

    request = file_request()
    step = pending_step(request)
    request_cancel(request=request, actor=requester)
    with pytest.raises(InvalidState, match="nothing to decide"):
        step_decide(step_id=step.pk, user=approver, verdict="approve")
    assert not Decision.objects.exists()


def test_an_inactive_approver_is_not_asked(file_request):
    UserFactory(username="gone", groups=["platform-approvers"], is_active=False)
    from approvals.selectors import step_recipients

    assert [r.username for r in step_recipients(pending_step(file_request()))] == []
