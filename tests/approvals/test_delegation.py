"""Delegation: an approver lets a colleague of their approver group decide in their place for a bounded
range of days (both included); those decisions are recorded as "X on behalf of Y", obey separation of
duties for both people, and every delegation given, used and ended is audited."""

from __future__ import annotations

import datetime

import pytest
from django.urls import reverse
from django.utils import timezone

from approvals.models import ApprovalStep, Decision, Delegation
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
    """Victor, frank's colleague in platform-approvers: decides in his own name, and for frank while
    frank's delegation is in force."""
    return UserFactory(username="victor", groups=["platform-approvers"])


def delegate(delegator, to, starts_on, ends_on, **kwargs) -> Delegation:
    # Created directly so a test can also make ranges that are over, or rows given before the rules of
    # today (the service refuses both).
    return Delegation.objects.create(delegator=delegator, delegate=to, starts_on=starts_on, ends_on=ends_on, **kwargs)


def decided_for(step) -> list[tuple[str, str | None]]:
    return [
        (d.approver.username, d.on_behalf_of.username if d.on_behalf_of else None)
        for d in Decision.objects.filter(step=step).select_related("approver", "on_behalf_of")
    ]


@pytest.mark.parametrize(
    ("starts", "ends", "in_force"),
    [
        (0, 0, True),  # a one-day delegation for today
        (0, 5, True),  # the first day is included
        (-5, 0, True),  # the last day is included
        (1, 5, False),  # starts tomorrow
        (-5, -1, False),  # ended yesterday
    ],
)
def test_the_delegation_window_includes_both_ends_and_nothing_else(
    file_request, approver, stand_in, starts, ends, in_force
):
    delegate(approver, stand_in, TODAY() + starts * DAY, TODAY() + ends * DAY)
    request = file_request()
    step = pending_step(request)
    assert steps_decidable_by(stand_in).get().acting_for == ("frank" if in_force else "")
    step_decide(step_id=step.pk, user=stand_in, verdict="approve", comment="frank is away")
    # Outside the window victor still decides: in his own name, as the member he is.
    assert decided_for(step) == [("victor", "frank" if in_force else None)]


def test_a_delegated_decision_is_recorded_as_x_on_behalf_of_y_and_the_use_is_audited(
    api, file_request, approver, stand_in, requester
):
    delegation = delegate(approver, stand_in, TODAY(), TODAY())
    request = file_request()
    step = pending_step(request)
    queue = api.as_(stand_in).get("/api/v1/approvals/").json()["results"]
    assert [(q["id"], q["acting_for"]) for q in queue] == [(str(step.pk), "frank")]
    response = api.post(f"/api/v1/approvals/{step.pk}/approve/", {"comment": "ok"}, format="json")
    assert response.status_code == 200, response.content
    decision = Decision.objects.get()
    assert (decision.approver, decision.on_behalf_of, decision.delegation, decision.decided_by) == (
        stand_in,
        approver,
        delegation,
        "victor on behalf of frank",
    )
    assert AuditEvent.objects.get(verb="step_approved").detail == "platform: victor on behalf of frank: ok"
    used = AuditEvent.objects.get(verb="delegation_used")
    assert (used.actor_name, used.target_type, used.target_id) == ("victor", "delegation", str(delegation.pk))
    assert f"platform step of request {request.pk}" in used.detail
    shown = api.as_(requester).get(f"/api/v1/requests/{request.pk}/").json()["approval"]["steps"][0]["decisions"]
    assert shown[0]["approver"] == "victor" and shown[0]["on_behalf_of"] == "frank"
    assert shown[0]["decided_by"] == "victor on behalf of frank"


def test_a_revoked_delegation_lends_nothing(file_request, approver, stand_in):
    delegation = delegate(approver, stand_in, TODAY(), TODAY() + DAY)
    delegation_revoke(delegation=delegation, actor=approver)
    step = pending_step(file_request())
    step_decide(step_id=step.pk, user=stand_in, verdict="approve")
    assert decided_for(step) == [("victor", None)]
    with pytest.raises(InvalidState):
        delegation_revoke(delegation=delegation, actor=approver)
    assert AuditEvent.objects.filter(verb="delegation_revoked", actor_name="frank").count() == 1
    assert not AuditEvent.objects.filter(verb="delegation_used").exists()


def test_a_delegation_given_to_someone_outside_the_group_lends_nothing(file_request, approver, outsider):
    # A row from before delegates had to be eligible: olga (team-zephyr, in no approver group) gets nothing
    # from it, and the first decision that finds it ends it.
    delegation = delegate(approver, outsider, TODAY(), TODAY())
    step = pending_step(file_request())
    assert not steps_decidable_by(outsider).exists()
    with pytest.raises(ApprovalStep.DoesNotExist):  # she does not even see it
        step_decide(step_id=step.pk, user=outsider, verdict="approve")
    assert not Decision.objects.exists()
    delegation.refresh_from_db()
    assert delegation.revoked_at is not None
    ended = AuditEvent.objects.get(verb="delegation_ended")
    assert ended.target_id == str(delegation.pk) and "no longer share an approver group" in ended.detail


def test_a_delegate_and_the_delegator_count_once_towards_a_quorum(
    load, file_request, approver, stand_in, second_approver
):
    load("rules:\n- {name: q, steps: [{name: platform, group: platform-approvers, required: 2}]}\n")
    delegate(approver, stand_in, TODAY(), TODAY())
    request = file_request()
    step = pending_step(request)
    step_decide(step_id=step.pk, user=stand_in, verdict="approve")
    with pytest.raises(InvalidState, match="already been decided"):
        step_decide(step_id=step.pk, user=approver, verdict="approve")
    step_decide(step_id=step.pk, user=second_approver, verdict="approve")
    assert decided_for(step) == [("victor", "frank"), ("paula", None)]
    request.refresh_from_db()
    assert request.state == "approved"


def test_a_delegate_decides_in_their_own_name_where_the_delegator_already_decided(
    load, file_request, approver, stand_in
):
    load("rules:\n- {name: q, steps: [{name: platform, group: platform-approvers, required: 2}]}\n")
    delegate(approver, stand_in, TODAY(), TODAY())
    step = pending_step(file_request())
    step_decide(step_id=step.pk, user=approver, verdict="approve")
    assert steps_decidable_by(stand_in).get().acting_for == ""
    step_decide(step_id=step.pk, user=stand_in, verdict="approve")
    assert decided_for(step) == [("frank", None), ("victor", None)]


def test_nothing_is_ever_decided_on_behalf_of_the_requester(file_request, requester, stand_in):
    # The requester is an approver too and delegated to victor: victor decides the request as himself.
    from django.contrib.auth.models import Group

    requester.groups.add(Group.objects.get_or_create(name="platform-approvers")[0])
    delegate(requester, stand_in, TODAY(), TODAY())
    step = pending_step(file_request())
    assert steps_decidable_by(stand_in).get().acting_for == ""
    step_decide(step_id=step.pk, user=stand_in, verdict="approve")
    assert decided_for(step) == [("victor", None)]


def test_a_delegate_cannot_decide_their_own_request_for_someone_else(file_request, requester, approver):
    from django.contrib.auth.models import Group

    requester.groups.add(Group.objects.get_or_create(name="platform-approvers")[0])
    delegate(approver, requester, TODAY(), TODAY())
    with pytest.raises(NotAllowed, match="filed"):
        step_decide(step_id=pending_step(file_request()).pk, user=requester, verdict="approve")
    assert not Decision.objects.exists()


def test_a_delegate_cannot_decide_a_second_step_for_the_same_request(load, file_request, approver, stand_in):
    load("rules:\n- {name: two, steps: [{name: a, group: platform-approvers}, {name: b, group: capacity}]}\n")
    capacity = UserFactory(username="cora", groups=["capacity"])
    stand_in.groups.add(*capacity.groups.all())
    delegate(approver, stand_in, TODAY(), TODAY())
    delegate(capacity, stand_in, TODAY(), TODAY())
    request = file_request()
    step_decide(step_id=pending_step(request).pk, user=stand_in, verdict="approve")
    with pytest.raises(NotAllowed, match="two steps"):
        step_decide(step_id=pending_step(request).pk, user=stand_in, verdict="approve")


def test_a_delegation_ends_and_is_audited_when_the_delegator_is_deactivated(file_request, approver, stand_in):
    delegation = delegate(approver, stand_in, TODAY(), TODAY() + DAY)
    approver.is_active = False
    approver.save()
    delegation.refresh_from_db()
    assert delegation.revoked_at is not None
    ended = AuditEvent.objects.get(verb="delegation_ended", target_id=str(delegation.pk))
    assert "frank is no longer active" in ended.detail
    step = pending_step(file_request())
    step_decide(step_id=step.pk, user=stand_in, verdict="approve")
    assert decided_for(step) == [("victor", None)]


def test_a_delegation_ends_and_is_audited_when_the_delegate_is_deactivated(approver, stand_in):
    delegation = delegate(approver, stand_in, TODAY(), TODAY() + DAY)
    stand_in.is_active = False
    stand_in.save()
    delegation.refresh_from_db()
    assert delegation.revoked_at is not None
    assert "victor is no longer active" in AuditEvent.objects.get(verb="delegation_ended").detail


def test_a_delegation_ended_at_decision_time_when_the_delegator_was_deactivated_in_bulk(
    file_request, approver, stand_in
):
    # `update()` sends no signal (as an admin's bulk action or a sync job might do it): the decision
    # finds out and ends the delegation then.
    delegation = delegate(approver, stand_in, TODAY(), TODAY())
    type(approver).objects.filter(pk=approver.pk).update(is_active=False)
    step = pending_step(file_request())
    assert steps_decidable_by(stand_in).get().acting_for == ""
    step_decide(step_id=step.pk, user=stand_in, verdict="approve")
    assert decided_for(step) == [("victor", None)]
    delegation.refresh_from_db()
    assert delegation.revoked_at is not None
    assert AuditEvent.objects.filter(verb="delegation_ended", target_id=str(delegation.pk)).count() == 1


@pytest.mark.parametrize("who", ["delegator", "delegate"])
def test_a_delegation_ends_and_is_audited_when_either_side_leaves_the_group(file_request, approver, stand_in, who):
    from django.contrib.auth.models import Group

    delegation = delegate(approver, stand_in, TODAY(), TODAY() + DAY)
    leaving = approver if who == "delegator" else stand_in
    leaving.groups.remove(Group.objects.get(name="platform-approvers"))
    delegation.refresh_from_db()
    assert delegation.revoked_at is not None
    assert "no longer share an approver group" in AuditEvent.objects.get(verb="delegation_ended").detail
    step = pending_step(file_request())
    if who == "delegator":
        step_decide(step_id=step.pk, user=stand_in, verdict="approve")
        assert decided_for(step) == [("victor", None)]
    else:
        with pytest.raises(ApprovalStep.DoesNotExist):  # victor decides, and sees, no platform step any more
            step_decide(step_id=step.pk, user=stand_in, verdict="approve")


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


NOT_ELIGIBLE = "No such user, or they cannot be your delegate."


def post_delegation(api, user, **fields):
    body = {"delegate": "victor", "starts_on": 0, "ends_on": 1}
    body.update(fields)
    body = {k: (str(TODAY() + v * DAY) if isinstance(v, int) else v) for k, v in body.items()}
    return api.as_(user).post("/api/v1/approvals/delegations/", body, format="json")


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"delegate": "frank"}, "delegate"),
        ({"delegate": "nobody"}, "delegate"),
        ({"starts_on": 2, "ends_on": 1}, "ends_on"),
        ({"starts_on": -3, "ends_on": -1}, "starts_on"),
        ({"starts_on": "soon"}, "starts_on"),
        ({"starts_on": "0001-01-01"}, "starts_on"),
        ({"ends_on": "9999-12-31"}, "ends_on"),
        ({"starts_on": 0, "ends_on": 90}, "ends_on"),  # 91 days, both included
        ({"starts_on": 91, "ends_on": 91}, "starts_on"),  # planned further ahead than 90 days
        ({"starts_on": "9999-12-31", "ends_on": "9999-12-31"}, "starts_on"),
    ],
)
def test_a_bad_delegation_is_a_400(api, approver, stand_in, fields, field):
    response = post_delegation(api, approver, **fields)
    assert response.status_code == 400, response.content
    assert field in response.json()
    assert not Delegation.objects.exists()
    assert not AuditEvent.objects.exists()


@pytest.mark.parametrize(("starts", "ends"), [(-1, 0), (0, 89), (90, 90)])
def test_a_delegation_may_start_yesterday_last_90_days_and_be_planned_90_days_ahead(
    api, approver, stand_in, starts, ends
):
    # Yesterday: "today" differs across time zones; the window the delegator sees is what counts.
    assert post_delegation(api, approver, starts_on=starts, ends_on=ends).status_code == 201


def test_the_longest_delegation_is_a_setting(api, approver, stand_in, settings):
    settings.LEASEHOLD_DELEGATION_MAX_DAYS = 7
    assert post_delegation(api, approver, starts_on=0, ends_on=7).status_code == 400
    assert post_delegation(api, approver, starts_on=0, ends_on=6).status_code == 201


@pytest.mark.parametrize("who", ["nobody", "olga", "dana", "paula-inactive", "tom"])
def test_only_an_active_member_of_the_delegator_s_approver_group_can_be_a_delegate(
    api, approver, outsider, requester, teammate, second_approver, who
):
    # Olga is on another team, dana files requests, tom is dana's teammate: none decides platform steps.
    # Paula does, but cannot log in any more. Each gets the answer an unknown name gets.
    if who == "paula-inactive":
        second_approver.is_active = False
        second_approver.save()
        who = "paula"
    response = post_delegation(api, approver, delegate=who)
    assert (response.status_code, response.json()) == (400, {"delegate": [NOT_ELIGIBLE]})
    assert not Delegation.objects.exists()


def test_a_delegator_in_no_approver_group_has_nothing_to_delegate(api, requester, teammate):
    # Dana and tom share team-atlas, which decides no step of the policy.
    response = post_delegation(api, requester, delegate="tom")
    assert (response.status_code, response.json()) == (400, {"delegate": [NOT_ELIGIBLE]})


def test_a_member_of_the_escalation_group_alone_is_not_eligible(api, load, approver):
    load("rules:\n- {name: e, steps: [{name: platform, group: platform-approvers, escalate_to: platform-leads}]}\n")
    UserFactory(username="pete", groups=["platform-leads"])
    response = post_delegation(api, approver, delegate="pete")
    assert (response.status_code, response.json()) == (400, {"delegate": [NOT_ELIGIBLE]})


def test_a_team_lead_delegates_to_another_lead_of_the_same_team(api, load, lead):
    # `team-{team}-leads` in the policy makes team-atlas-leads an approver group.
    load("rules:\n- {name: l, steps: [{name: lead, group: 'team-{team}-leads'}]}\n")
    UserFactory(username="lars", groups=["team-atlas-leads"])
    UserFactory(username="zoe", groups=["team-zephyr-leads"])
    assert post_delegation(api, lead, delegate="zoe").status_code == 400
    assert post_delegation(api, lead, delegate="lars").status_code == 201


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


@pytest.mark.parametrize("who", ["nobody", "olga"])
def test_the_queue_page_answers_an_unknown_and_an_ineligible_delegate_alike(client, approver, outsider, who):
    client.force_login(approver)
    body = {"op": "delegate", "delegate": who, "starts_on": TODAY(), "ends_on": TODAY()}
    response = client.post(reverse("approval-queue"), body)
    assert response.status_code == 200
    assert NOT_ELIGIBLE in response.content.decode()
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


def test_the_admin_refuses_a_delegate_outside_the_group(client, admin_user, approver, outsider):
    client.force_login(admin_user)
    response = client.post(
        reverse("admin:approvals_delegation_add"),
        {"delegator": approver.pk, "delegate": outsider.pk, "starts_on": TODAY(), "ends_on": TODAY()},
    )
    assert response.status_code == 200
    assert not Delegation.objects.exists()


def test_the_service_refuses_a_range_that_is_over(approver, stand_in):
    with pytest.raises(ValidationFailed):
        delegation_create(
            delegator=approver, delegate=stand_in, starts_on=TODAY() - 2 * DAY, ends_on=TODAY() - DAY, actor=approver
        )
