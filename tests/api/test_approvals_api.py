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


def test_an_approval_moves_the_request_to_approved_and_enqueues_once(
    api, filed, approver, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as callbacks:
        response = api.as_(approver).post(step_url(filed, "approve"), {"comment": "ok"}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["state"] == "approved"
    assert ResourceRequest.objects.get(pk=filed["id"]).state == "approved"
    assert len(callbacks) == 1
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


def test_someone_outside_the_steps_group_cannot_decide(api, filed, teammate):
    response = api.as_(teammate).post(step_url(filed, "approve"), {}, format="json")
    assert response.status_code == 403
    assert ResourceRequest.objects.get(pk=filed["id"]).state == "pending_approval"


def test_an_outsider_gets_404_for_the_step(api, filed, outsider):
    assert api.as_(outsider).post(step_url(filed, "approve"), {}, format="json").status_code == 404


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
    assert Decision.objects.count() == 1


def test_a_cancelled_request_cannot_be_approved(api, filed, requester, approver):
    api.as_(requester).post(f"/api/v1/requests/{filed['id']}/cancel/")
    assert api.as_(approver).post(step_url(filed, "approve"), {}, format="json").status_code == 409
