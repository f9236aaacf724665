"""Delegation: an approver lets someone decide in their place for a range of days (both included);
those decisions are recorded as "X on behalf of Y" and obey separation of duties for both people."""

from __future__ import annotations

import datetime

import pytest
from django.urls import reverse
from django.utils import timezone

from approvals.models import Decision, Delegation
from approvals.selectors import steps_decidable_by
from approvals.services import delegation_create, delegation_revoke, step_decide
from requests_app.errors import InvalidState, NotAllowed, ValidationFailed
from requests_app.models import AuditEvent
from tests.factories import UserFactory

from .conftest import pending_step

pytestmark = pytest.mark.django_db

TODAY = timezone.localdate
DAY = datetime.timedelta(days=1)


@pytest.fixture
def stand_in(db):
    """Victor, in no approver group: decides only through a delegation."""
    return UserFactory(username="victor", groups=[])


def delegate(delegator, to, starts_on, ends_on, **kwargs) -> Delegation:
    # Created directly so a test can also make ranges that are over (the service refuses those).
    return Delegation.objects.create(delegator=delegator, delegate=to, starts_on=starts_on, ends_on=ends_on, **kwargs)


@pytest.mark.parametrize(
    ("starts", "ends", "allowed"),
    [
        (0, 0, True),  # a one-day delegation for today
        (0, 5, True),  # the first day is included
        (-5, 0, True),  # the last day is included
        (1, 5, False),  # starts tomorrow
        (-5, -1, False),  # ended yesterday
    ],
)
def test_the_delegation_window_includes_both_ends_and_nothing_else(
    file_request, approver, stand_in, starts, ends, allowed
):
    delegate(approver, stand_in, TODAY() + starts * DAY, TODAY() + ends * DAY)
    request = file_request()
    step = pending_step(request)
    assert steps_decidable_by(stand_in).exists() is allowed
    if allowed:
        step_decide(step_id=step.pk, user=stand_in, verdict="approve", comment="frank is away")
        request.refresh_from_db()
        assert request.state == "approved"
    else:
        with pytest.raises(NotAllowed):
            step_decide(step_id=step.pk, user=stand_in, verdict="approve")


def test_a_delegated_decision_is_recorded_as_x_on_behalf_of_y(api, file_request, approver, stand_in, requester):
    delegate(approver, stand_in, TODAY(), TODAY())
    request = file_request()
    step = pending_step(request)
    queue = api.as_(stand_in).get("/api/v1/approvals/").json()["results"]
    assert [(q["id"], q["acting_for"]) for q in queue] == [(str(step.pk), "frank")]
    response = api.post(f"/api/v1/approvals/{step.pk}/approve/", {"comment": "ok"}, format="json")
    assert response.status_code == 200, response.content
    decision = Decision.objects.get()
    assert (decision.approver, decision.on_behalf_of, decision.decided_by) == (
        stand_in,
        approver,
        "victor on behalf of frank",
    )
    assert AuditEvent.objects.get(verb="step_approved").detail == "platform: victor on behalf of frank: ok"
    shown = api.as_(requester).get(f"/api/v1/requests/{request.pk}/").json()["approval"]["steps"][0]["decisions"]
    assert shown[0]["approver"] == "victor" and shown[0]["on_behalf_of"] == "frank"
    assert shown[0]["decided_by"] == "victor on behalf of frank"


def test_a_revoked_delegation_lends_nothing(file_request, approver, stand_in):
    delegation = delegate(approver, stand_in, TODAY(), TODAY() + DAY)
    delegation_revoke(delegation=delegation, actor=approver)
    with pytest.raises(NotAllowed):
        step_decide(step_id=pending_step(file_request()).pk, user=stand_in, verdict="approve")
    with pytest.raises(InvalidState):
        delegation_revoke(delegation=delegation, actor=approver)
    assert AuditEvent.objects.filter(verb="delegation_revoked", actor_name="frank").count() == 1


def test_a_delegate_and_the_delegator_count_once_towards_a_quorum(load, file_request, approver, stand_in):
    load("rules:\n- {name: q, steps: [{name: platform, group: platform-approvers, required: 2}]}\n")
    delegate(approver, stand_in, TODAY(), TODAY())
    step = pending_step(file_request())
    step_decide(step_id=step.pk, user=approver, verdict="approve")
    with pytest.raises(InvalidState, match="already been decided"):
        step_decide(step_id=step.pk, user=stand_in, verdict="approve")
    assert step.decisions.count() == 1


def test_nobody_decides_their_own_request_through_a_delegate(file_request, requester, stand_in):
    # The requester is an approver too and lent their rights to victor: victor may not use them here.
    from django.contrib.auth.models import Group

    requester.groups.add(Group.objects.get_or_create(name="platform-approvers")[0])
    delegate(requester, stand_in, TODAY(), TODAY())
    with pytest.raises(NotAllowed, match="not even through a delegate"):
        step_decide(step_id=pending_step(file_request()).pk, user=stand_in, verdict="approve")
    assert not steps_decidable_by(stand_in).exists()


def test_a_delegate_cannot_decide_their_own_request_for_someone_else(file_request, requester, approver):
    delegate(approver, requester, TODAY(), TODAY())
    with pytest.raises(NotAllowed, match="filed"):
        step_decide(step_id=pending_step(file_request()).pk, user=requester, verdict="approve")


def test_a_delegate_cannot_decide_a_second_step_for_the_same_request(load, file_request, approver, stand_in):
    load("rules:\n- {name: two, steps: [{name: a, group: platform-approvers}, {name: b, group: capacity}]}\n")
    capacity = UserFactory(username="cora", groups=["capacity"])
    delegate(approver, stand_in, TODAY(), TODAY())
    delegate(capacity, stand_in, TODAY(), TODAY())
    request = file_request()
    step_decide(step_id=pending_step(request).pk, user=stand_in, verdict="approve")
    with pytest.raises(NotAllowed, match="two steps"):
        step_decide(step_id=pending_step(request).pk, user=stand_in, verdict="approve")


def test_a_delegation_is_given_for_yourself_through_the_api_and_audited(api, approver, stand_in):
    body = {"delegate": "victor", "starts_on": str(TODAY()), "ends_on": str(TODAY() + 7 * DAY), "reason": "holiday"}
    response = api.as_(approver).post("/api/v1/approvals/delegations/", body, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["delegator"] == "frank" and response.json()["active"] is True
    delegation = Delegation.objects.get()
    assert (delegation.delegator, delegation.delegate, delegation.created_by) == (approver, stand_in, approver)
    event = AuditEvent.objects.get(verb="delegation_created")
    assert (event.actor_name, event.target_type, event.target_id) == ("frank", "delegation", str(delegation.pk))
    assert "victor decides on behalf of frank" in event.detail
    listed = api.as_(stand_in).get("/api/v1/approvals/delegations/").json()
    assert [d["id"] for d in listed] == [delegation.pk]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"delegate": "frank", "starts_on": 0, "ends_on": 1}, "delegate"),
        ({"delegate": "nobody", "starts_on": 0, "ends_on": 1}, "delegate"),
        ({"delegate": "victor", "starts_on": 2, "ends_on": 1}, "ends_on"),
        ({"delegate": "victor", "starts_on": -3, "ends_on": -1}, "ends_on"),
        ({"delegate": "victor", "starts_on": "soon", "ends_on": 1}, "starts_on"),
    ],
)
def test_a_bad_delegation_is_a_400(api, approver, stand_in, body, field):
    body = {k: (str(TODAY() + v * DAY) if isinstance(v, int) else v) for k, v in body.items()}
    response = api.as_(approver).post("/api/v1/approvals/delegations/", body, format="json")
    assert response.status_code == 400
    assert field in response.json()
    assert not Delegation.objects.exists()


def test_only_the_people_involved_or_an_admin_revoke_a_delegation(api, approver, stand_in, outsider, admin_user):
    delegation = delegate(approver, stand_in, TODAY(), TODAY())
    url = f"/api/v1/approvals/delegations/{delegation.pk}/revoke/"
    assert api.as_(outsider).post(url).status_code == 404
    assert api.as_(admin_user).post(url).status_code == 200
    assert api.as_(approver).post(url).status_code == 409
    delegation.refresh_from_db()
    assert delegation.revoked_by == admin_user


def test_delegation_endpoints_need_authentication(api):
    assert api.get("/api/v1/approvals/delegations/").status_code == 401
    assert api.post("/api/v1/approvals/delegations/", {}, format="json").status_code == 401


def test_a_delegation_is_given_and_revoked_on_the_queue_page(client, approver, stand_in):
    client.force_login(approver)
    body = {"op": "delegate", "delegate": "victor", "starts_on": TODAY(), "ends_on": TODAY() + DAY, "reason": "off"}
    assert client.post(reverse("approval-queue"), body).status_code == 302
    delegation = Delegation.objects.get(delegator=approver, delegate=stand_in)
    page = client.get(reverse("approval-queue")).content.decode()
    assert "victor decides for you" in page
    client.post(reverse("approval-queue"), {"op": "revoke", "delegation": delegation.pk})
    delegation.refresh_from_db()
    assert delegation.revoked_at is not None


def test_the_queue_page_shows_delegation_errors(client, approver):
    client.force_login(approver)
    body = {"op": "delegate", "delegate": "frank", "starts_on": TODAY(), "ends_on": TODAY()}
    response = client.post(reverse("approval-queue"), body)
    assert response.status_code == 200
    assert "Delegate to someone else." in response.content.decode()
    assert not Delegation.objects.exists()


def test_an_admin_gives_a_delegation_for_someone_in_the_admin_and_it_is_audited(client, admin_user, approver, stand_in):
    client.force_login(admin_user)
    response = client.post(
        reverse("admin:approvals_delegation_add"),
        {
            "delegator": approver.pk,
            "delegate": stand_in.pk,
            "starts_on": TODAY(),
            "ends_on": TODAY() + DAY,
            "reason": "frank is ill",
        },
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    delegation = Delegation.objects.get()
    assert delegation.created_by == admin_user
    assert AuditEvent.objects.get(verb="delegation_created").actor_name == "ada"


def test_the_admin_refuses_a_delegation_to_oneself(client, admin_user, approver):
    client.force_login(admin_user)
    response = client.post(
        reverse("admin:approvals_delegation_add"),
        {"delegator": approver.pk, "delegate": approver.pk, "starts_on": TODAY(), "ends_on": TODAY()},
    )
    assert response.status_code == 200
    assert not Delegation.objects.exists()


def test_the_service_refuses_a_range_that_is_over(approver, stand_in):
    with pytest.raises(ValidationFailed):
        delegation_create(
            delegator=approver, delegate=stand_in, starts_on=TODAY() - 2 * DAY, ends_on=TODAY() - DAY, actor=approver
        )
