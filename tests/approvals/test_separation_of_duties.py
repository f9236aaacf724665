"""Separation of duties: nobody decides their own request, nor two steps of one request, whatever
groups they are in or joined since. Every refusal is a 403 and an audit event."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group

from approvals.models import ApprovalStep, Decision
from approvals.selectors import steps_decidable_by
from approvals.services import step_decide
from requests_app.errors import NotAllowed
from requests_app.models import AuditEvent

from .conftest import pending_step

pytestmark = pytest.mark.django_db

TWO_PLATFORM_STEPS = (
    "rules:\n- {name: two, steps: [{name: first, group: platform-approvers}, {name: second, group: capacity}]}\n"
)


def join(user, *names):
    user.groups.add(*(Group.objects.get_or_create(name=n)[0] for n in names))


def refusals(user) -> list[str]:
    return list(
        AuditEvent.objects.filter(verb="decision_refused", actor_name=user.username).values_list("detail", flat=True)
    )


def test_it_rejects_self_approval(file_request, requester):
    join(requester, "platform-approvers")
    request = file_request()
    assert not steps_decidable_by(requester).exists()
    with pytest.raises(NotAllowed, match="request they filed"):
        step_decide(step_id=pending_step(request).pk, user=requester, verdict="approve")
    assert not Decision.objects.exists()
    assert refusals(requester) == ["platform: Nobody may decide on a request they filed."]


def test_it_rejects_self_rejection_too(file_request, requester):
    join(requester, "platform-approvers")
    with pytest.raises(NotAllowed):
        step_decide(step_id=pending_step(file_request()).pk, user=requester, verdict="reject", comment="oops")


def test_a_requester_who_joined_the_group_after_filing_still_cannot_decide(file_request, requester):
    request = file_request()
    join(requester, "platform-approvers")
    with pytest.raises(NotAllowed, match="filed"):
        step_decide(step_id=pending_step(request).pk, user=requester, verdict="approve")


def test_someone_in_both_groups_cannot_approve_two_steps(load, file_request, approver):
    load(TWO_PLATFORM_STEPS)
    join(approver, "capacity")
    request = file_request()
    step_decide(step_id=pending_step(request).pk, user=approver, verdict="approve")
    second = pending_step(request)
    assert not steps_decidable_by(approver).exists()
    with pytest.raises(NotAllowed, match="two steps"):
        step_decide(step_id=second.pk, user=approver, verdict="approve")
    assert refusals(approver) == ["second: Nobody may decide two steps of the same request."]
    assert second.decisions.count() == 0


def test_someone_who_joined_the_next_group_after_approving_cannot_approve_it(load, file_request, approver):
    load(TWO_PLATFORM_STEPS)
    request = file_request()
    step_decide(step_id=pending_step(request).pk, user=approver, verdict="approve")
    join(approver, "capacity")
    with pytest.raises(NotAllowed, match="two steps"):
        step_decide(step_id=pending_step(request).pk, user=approver, verdict="approve")


def test_a_member_of_another_group_cannot_decide(file_request, teammate, security):
    request = file_request()
    # Tom sees his team's request: he is refused, and the refusal is in the trail.
    with pytest.raises(NotAllowed, match="Only members of platform-approvers"):
        step_decide(step_id=pending_step(request).pk, user=teammate, verdict="approve")
    assert len(refusals(teammate)) == 1
    # Sam (security, team-zephyr) has no business with atlas's platform step: it does not exist for him.
    with pytest.raises(ApprovalStep.DoesNotExist):
        step_decide(step_id=pending_step(request).pk, user=security, verdict="approve")
    assert refusals(security) == []


def test_someone_who_left_the_group_cannot_decide(file_request, approver):
    request = file_request()
    approver.groups.remove(Group.objects.get(name="platform-approvers"))
    with pytest.raises(ApprovalStep.DoesNotExist):
        step_decide(step_id=pending_step(request).pk, user=approver, verdict="approve")


def test_a_teammate_may_approve_when_in_the_group(file_request, teammate):
    # Separation of duties binds the requester, not their team: a teammate who is an approver may decide.
    join(teammate, "platform-approvers")
    request = file_request()
    step_decide(step_id=pending_step(request).pk, user=teammate, verdict="approve")
    request.refresh_from_db()
    assert request.state == "approved"
