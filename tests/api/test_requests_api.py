import pytest

from requests_app.metrics import MetricUpdate
from requests_app.models import AuditEvent, ResourceRequest
from tests.conftest import namespace_body
from tests.factories import UserFactory, team

pytestmark = pytest.mark.django_db
URL = "/api/v1/requests/"


def test_it_files_a_namespace_request_as_pending_approval(api, requester, approver):
    response = api.as_(requester).post(URL, namespace_body(), format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["state"], body["requester"], body["team"], body["action"]) == (
        "pending_approval",
        "dana",
        "atlas",
        "create",
    )
    assert body["approval"]["rule"] == "default"
    assert [(s["name"], s["group"], s["state"]) for s in body["approval"]["steps"]] == [
        ("platform", "platform-approvers", "pending")
    ]
    assert [e["verb"] for e in body["events"]][:1] == ["submitted"]
    assert AuditEvent.objects.filter(request_id=body["id"], verb="submitted", actor_name="dana").count() == 1


def test_a_small_dev_namespace_is_approved_at_once_by_the_policy(api, requester, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        response = api.as_(requester).post(URL, namespace_body(spec={"plan": "small"}), format="json")
    assert response.status_code == 201
    assert response.json()["state"] == "approved"
    assert response.json()["approval"] == {"rule": "small-dev", "steps": []}
    assert AuditEvent.objects.get(verb="approved").detail == "auto-approved by rule small-dev"
    # Provisioning is enqueued only once the approval commits (so are the metrics' counts).
    assert len([c for c in callbacks if not isinstance(c, MetricUpdate)]) == 1


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"name": "Bad_Name"}, "name"),
        ({"name": "x" * 60}, "name"),
        ({"name": ""}, "name"),
        ({"team": "zephyr"}, "team"),
        ({"team": "nope"}, "team"),
        ({"environment": "moon"}, "environment"),
        ({"kind": "bucket"}, "kind"),
        ({"lease_days": 0}, "lease_days"),
        ({"lease_days": 91}, "lease_days"),
        ({"lease_days": "soon"}, "lease_days"),
        ({"spec": {"plan": "huge"}}, "spec.plan"),
        ({"spec": ["small"]}, "spec"),
        ({"spec": {"cpu": "lots", "memory": "1Gi", "storage": "1Gi"}}, "spec.cpu"),
    ],
)
def test_bad_input_gets_a_400_naming_the_field_and_creates_nothing(api, requester, outsider, overrides, field):
    response = api.as_(requester).post(URL, namespace_body(**overrides), format="json")
    assert response.status_code == 400, response.content
    assert field in response.json()
    assert ResourceRequest.objects.count() == 0
    assert AuditEvent.objects.count() == 0


@pytest.mark.parametrize("url", [URL, "/api/v1/plan/"])
def test_a_team_that_does_not_exist_and_another_team_get_the_same_answer(api, requester, outsider, url):
    # A name that is too long only as `zephyr-<name>` must not tell that zephyr exists either.
    answers = [
        api.as_(requester).post(url, namespace_body(team=team, name="x" * 58), format="json")
        for team in ("zephyr", "nope")
    ]
    assert [a.status_code for a in answers] == [400, 400]
    assert answers[0].json() == answers[1].json() == {"team": ["No such team, or you are not a member of it."]}
    assert ResourceRequest.objects.count() == 0


def test_a_body_that_is_not_json_is_a_400(api, requester):
    response = api.as_(requester).post(URL, "{not json", content_type="application/json")
    assert response.status_code == 400


def test_the_same_name_cannot_be_requested_twice_while_the_first_lives(api, requester, teammate):
    assert api.as_(requester).post(URL, namespace_body(), format="json").status_code == 201
    response = api.as_(teammate).post(URL, namespace_body(), format="json")
    assert response.status_code == 400
    assert "already has a namespace" in response.json()["name"][0]


def test_an_outsider_gets_404_for_someone_elses_request(api, requester, outsider):
    request_id = api.as_(requester).post(URL, namespace_body(), format="json").json()["id"]
    assert api.as_(outsider).get(f"{URL}{request_id}/").status_code == 404
    assert api.as_(outsider).post(f"{URL}{request_id}/cancel/").status_code == 404
    assert api.as_(outsider).get(f"{URL}{request_id}/plan/").status_code == 404
    assert api.as_(outsider).get(URL).json()["results"] == []


def test_teammates_and_admins_see_the_teams_requests(api, requester, teammate, admin_user):
    request_id = api.as_(requester).post(URL, namespace_body(), format="json").json()["id"]
    assert api.as_(teammate).get(f"{URL}{request_id}/").status_code == 200
    assert [r["id"] for r in api.as_(admin_user).get(URL).json()["results"]] == [request_id]


def test_the_list_filters_by_state_kind_and_team(api, requester):
    api.as_(requester).post(URL, namespace_body(), format="json")
    assert len(api.get(URL, {"state": "pending_approval"}).json()["results"]) == 1
    assert len(api.get(URL, {"state": "active"}).json()["results"]) == 0
    assert len(api.get(URL, {"team": "zephyr"}).json()["results"]) == 0
    assert api.get(URL, {"state": "bogus"}).status_code == 400


def test_unauthenticated_callers_get_401(api):
    assert api.get(URL).status_code == 401
    assert api.post(URL, namespace_body(), format="json").status_code == 401


def test_a_teammate_can_cancel_a_pending_request_once(api, requester, teammate):
    request_id = api.as_(requester).post(URL, namespace_body(), format="json").json()["id"]
    response = api.as_(teammate).post(f"{URL}{request_id}/cancel/")
    assert response.status_code == 200
    assert response.json()["state"] == "cancelled"
    again = api.post(f"{URL}{request_id}/cancel/")
    assert again.status_code == 409
    assert "cancelled" in again.json()["detail"]


def test_the_plan_shows_the_objects_with_the_future_resource_id(api, requester):
    filed = api.as_(requester).post(URL, namespace_body(), format="json").json()
    objects = api.get(f"{URL}{filed['id']}/plan/").json()["objects"]
    assert [o["kind"] for o in objects] == ["Namespace", "ResourceQuota", "LimitRange", "RoleBinding", "NetworkPolicy"]
    assert {o["metadata"]["annotations"]["leasehold.io/request"] for o in objects} == {filed["id"]}
    preview = api.post("/api/v1/plan/", namespace_body(name="other"), format="json")
    assert preview.status_code == 200
    assert preview.json()["objects"][0]["metadata"]["name"] == "atlas-other"
    assert ResourceRequest.objects.count() == 1
    assert api.post("/api/v1/plan/", namespace_body(name="Nope"), format="json").status_code == 400


def test_me_lists_teams_groups_and_admin_flag(api, requester, admin_user):
    assert api.as_(requester).get("/api/v1/me/").json() == {
        "username": "dana",
        "email": "dana@example.org",
        "teams": ["atlas"],
        "groups": ["team-atlas"],
        "is_admin": False,
    }
    assert api.as_(admin_user).get("/api/v1/me/").json()["is_admin"] is True


@pytest.mark.parametrize(
    ("name", "setting", "value"),
    [
        ("backups", "LEASEHOLD_BACKUP_NAMESPACE", "leasehold-backups"),
        ("system", "LEASEHOLD_SERVICE_NAMESPACE", "leasehold-system"),
        ("portal", "LEASEHOLD_SERVICE_NAMESPACE", "leasehold-portal"),
    ],
)
def test_no_team_namespace_may_be_the_services_or_its_backups_namespace(api, settings, name, setting, value):
    setattr(settings, setting, value)
    team("leasehold")
    member = UserFactory(username="lee", groups=["team-leasehold"])
    response = api.as_(member).post(URL, namespace_body(team="leasehold", name=name), format="json")
    assert response.status_code == 400, response.content
    assert response.json() == {"name": [f"The namespace '{value}' is reserved."]}
    assert api.post(URL, namespace_body(team="leasehold", name="shop"), format="json").status_code == 201
