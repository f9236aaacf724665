"""`/api/v1/approvals/`: the queue and the decisions, as every persona (moved here from tests/api)."""

from __future__ import annotations

import uuid

import pytest

from approvals.models import Decision
from requests_app.models import AuditEvent, ResourceRequest
from tests.conftest import namespace_body
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def filed(api, requester):
    body = api.as_(requester).post("/api/v1/requests/", namespace_body(), format="json").json()
    api.force_authenticate(None)
    return body


def step_url(filed, verb):
    return f"/api/v1/approvals/{filed['approval']['steps'][0]['id']}/{verb}/"


def test_the_queue_lists_what_the_approver_may_decide(api, filed, approver):
    queue = api.as_(approver).get("/api/v1/approvals/").json()["results"]
    assert [(q["name"], q["request"]["id"]) for q in queue] == [("platform", filed["id"])]
    item = queue[0]
    assert (item["size"], item["acting_for"], item["rule"]) == ("medium", "", "default")
    assert item["plan_url"] == f"/api/v1/requests/{filed['id']}/plan/"
    assert item["page_url"] == f"/requests/{filed['id']}/"


@pytest.mark.parametrize("persona", ["requester", "teammate", "outsider", "admin_user"])
def test_nobody_else_has_the_step_in_their_queue(api, filed, request, persona):
    assert api.as_(request.getfixturevalue(persona)).get("/api/v1/approvals/").json()["results"] == []


def test_an_approval_moves_the_request_to_approved_once(api, filed, approver):
    response = api.as_(approver).post(step_url(filed, "approve"), {"comment": "ok"}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["state"] == "approved"
    assert response.json()["decisions"][0]["decided_by"] == "frank"
    assert ResourceRequest.objects.get(pk=filed["id"]).state == "approved"
    assert AuditEvent.objects.filter(request_id=filed["id"], verb="approved").count() == 1
    assert api.get("/api/v1/approvals/").json()["results"] == []


def test_it_rejects_self_approval(api, requester, atlas):
    requester.groups.add(*UserFactory(username="x", groups=["platform-approvers"]).groups.all())
    filed = api.as_(requester).post("/api/v1/requests/", namespace_body(), format="json").json()
    assert api.get("/api/v1/approvals/").json()["results"] == []
    response = api.post(step_url(filed, "approve"), {}, format="json")
    assert response.status_code == 403
    assert "filed" in response.json()["detail"]
    assert ResourceRequest.objects.get(pk=filed["id"]).state == "pending_approval"
    assert not Decision.objects.exists()
    assert AuditEvent.objects.filter(verb="decision_refused", actor_name="dana").count() == 1


def test_someone_outside_the_steps_group_gets_403_and_an_audit_event(api, filed, teammate):
    response = api.as_(teammate).post(step_url(filed, "approve"), {}, format="json")
    assert response.status_code == 403
    assert ResourceRequest.objects.get(pk=filed["id"]).state == "pending_approval"
    assert AuditEvent.objects.filter(verb="decision_refused", actor_name="tom").count() == 1


@pytest.mark.parametrize("verb", ["approve", "reject"])
def test_an_outsider_gets_404_for_the_step_and_leaves_no_trace_in_the_team_s_trail(api, filed, outsider, verb):
    unknown = f"/api/v1/approvals/{uuid.uuid4()}/{verb}/"
    answers = [api.as_(outsider).post(url, {"comment": "x"}, format="json") for url in (step_url(filed, verb), unknown)]
    assert [a.status_code for a in answers] == [404, 404]
    assert answers[0].json() == answers[1].json()
    assert not AuditEvent.objects.filter(actor_name="olga").exists()


@pytest.mark.parametrize("verb", ["approve", "reject"])
def test_an_anonymous_caller_gets_401(api, filed, verb):
    assert api.post(step_url(filed, verb), {}, format="json").status_code == 401
    assert api.get("/api/v1/approvals/").status_code == 401


def test_an_admin_who_is_not_an_approver_gets_403(api, filed, admin_user):
    assert api.as_(admin_user).post(step_url(filed, "approve"), {}, format="json").status_code == 403


def test_a_rejection_needs_a_comment_and_rejects_the_request(api, filed, approver):
    missing = api.as_(approver).post(step_url(filed, "reject"), {"comment": " "}, format="json")
    assert missing.status_code == 400
    assert "comment" in missing.json()
    response = api.post(step_url(filed, "reject"), {"comment": "too big for a test"}, format="json")
    assert response.status_code == 200
    assert ResourceRequest.objects.get(pk=filed["id"]).state == "rejected"


def test_a_decided_step_cannot_be_decided_again(api, filed, approver, second_approver):
    api.as_(approver).post(step_url(filed, "approve"), {}, format="json")
    response = api.as_(second_approver).post(step_url(filed, "approve"), {}, format="json")
    assert response.status_code == 409
    assert "nothing to decide" in response.json()["detail"]
    assert Decision.objects.count() == 1


def test_a_cancelled_request_cannot_be_approved(api, filed, requester, approver):
    api.as_(requester).post(f"/api/v1/requests/{filed['id']}/cancel/")
    assert api.as_(approver).post(step_url(filed, "approve"), {}, format="json").status_code == 409


def test_cancelling_closes_the_open_steps(api, filed, requester, approver):
    api.as_(requester).post(f"/api/v1/requests/{filed['id']}/cancel/")
    steps = api.get(f"/api/v1/requests/{filed['id']}/").json()["approval"]["steps"]
    assert [s["state"] for s in steps] == ["skipped"]


@pytest.mark.parametrize("body", [{"comment": "x" * 2001}, {"comment": ["a"]}])
def test_bad_decision_input_is_a_400(api, filed, approver, body):
    assert api.as_(approver).post(step_url(filed, "approve"), body, format="json").status_code == 400


def test_several_steps_are_approved_at_once_through_the_api(api, requester, approver):
    ids = []
    for name in ("one", "two"):
        body = api.as_(requester).post("/api/v1/requests/", namespace_body(name=name), format="json").json()
        ids.append(body["approval"]["steps"][0]["id"])
    response = api.as_(approver).post("/api/v1/approvals/approve-many/", {"steps": ids}, format="json")
    assert response.status_code == 200
    assert [(r["step_id"], r["ok"]) for r in response.json()["results"]] == [(ids[0], True), (ids[1], True)]
    again = api.post("/api/v1/approvals/approve-many/", {"steps": ids[:1]}, format="json").json()["results"]
    assert again[0]["ok"] is False and "nothing to decide" in again[0]["detail"]


@pytest.mark.parametrize("body", [{}, {"steps": []}, {"steps": ["nope"]}])
def test_a_bad_batch_is_a_400(api, approver, body):
    assert api.as_(approver).post("/api/v1/approvals/approve-many/", body, format="json").status_code == 400


def test_a_batch_of_an_outsider_approves_nothing(api, filed, outsider):
    step_id = filed["approval"]["steps"][0]["id"]
    results = api.as_(outsider).post("/api/v1/approvals/approve-many/", {"steps": [step_id]}, format="json").json()
    assert results["results"][0]["ok"] is False
    assert ResourceRequest.objects.get(pk=filed["id"]).state == "pending_approval"


@pytest.mark.parametrize("persona", ["outsider", "security"])
def test_a_batch_answers_for_a_step_the_caller_may_not_see_as_for_an_unknown_one(api, filed, request, persona):
    # Olga is on another team; sam decides security steps, not the platform step of an atlas request.
    step_id, unknown = filed["approval"]["steps"][0]["id"], str(uuid.uuid4())
    caller = request.getfixturevalue(persona)
    response = api.as_(caller).post("/api/v1/approvals/approve-many/", {"steps": [step_id, unknown]}, format="json")
    assert response.status_code == 200
    assert [(r["ok"], r["detail"]) for r in response.json()["results"]] == [(False, "No such step.")] * 2
    assert not AuditEvent.objects.filter(actor_name=caller.username).exists()
    assert not AuditEvent.objects.filter(request_id=filed["id"], verb="decision_refused").exists()


def test_a_batch_still_audits_a_refusal_on_a_step_the_caller_may_see(api, filed, teammate):
    # Tom sees his team's request but decides no step of it: the refusal lands in his own team's trail.
    step_id = filed["approval"]["steps"][0]["id"]
    response = api.as_(teammate).post("/api/v1/approvals/approve-many/", {"steps": [step_id]}, format="json")
    outcome = response.json()["results"][0]
    assert outcome["ok"] is False and "Only members of platform-approvers" in outcome["detail"]
    assert AuditEvent.objects.filter(request_id=filed["id"], verb="decision_refused", actor_name="tom").count() == 1


def test_the_schema_describes_the_approval_endpoints(api, admin_user):
    schema = api.as_(admin_user).get("/api/schema/?format=json").json()
    for path in [
        "/api/v1/approvals/",
        "/api/v1/approvals/{id}/approve/",
        "/api/v1/approvals/{id}/reject/",
        "/api/v1/approvals/approve-many/",
        "/api/v1/approvals/delegations/",
        "/api/v1/approvals/delegations/{delegation_id}/revoke/",
    ]:
        assert path in schema["paths"], path
