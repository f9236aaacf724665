"""Database and app requests, the catalog, team budgets and namespace headroom, through the API."""

import pytest

from requests_app.models import AuditEvent, ResourceRequest
from tests.conftest import namespace_body
from tests.factories import active_namespace, app_template

pytestmark = pytest.mark.django_db
URL = "/api/v1/requests/"


def db_body(namespace="checkout", **spec):
    return {
        "kind": "database",
        "team": "atlas",
        "name": "orders",
        "environment": "dev",
        "lease_days": 14,
        "justification": "orders service",
        "spec": {"namespace": namespace, **spec},
    }


def app_body(namespace="checkout", **spec):
    return {
        "kind": "app",
        "team": "atlas",
        "name": "shop",
        "environment": "dev",
        "lease_days": 14,
        "justification": "the shop",
        "spec": {"namespace": namespace, "template": "web", **spec},
    }


@pytest.fixture
def namespace(atlas, requester):
    return active_namespace(atlas, requester, plan="small")  # 2 CPU, 4Gi, 20Gi


def assert_refused(response, field):
    assert response.status_code == 400, response.content
    assert field in response.json(), response.json()
    assert ResourceRequest.objects.filter(kind__in=["database", "app"]).count() == 0


def test_the_catalog_lists_kinds_plans_environments_and_templates(api, requester):
    app_template("web")
    app_template("retired", active=False)
    body = api.as_(requester).get("/api/v1/catalog/").json()
    assert [k["kind"] for k in body["kinds"]] == ["namespace", "database", "app", "cache"]
    assert body["kinds"][0]["plans"]["medium"] == {"cpu": "4", "memory": "8Gi", "storage": "50Gi"}
    assert body["kinds"][1]["versions"][-1] == "17"
    assert body["kinds"][1]["schema"]["required"] == ["namespace"]
    assert [t["slug"] for t in body["templates"]] == ["web"]
    assert body["environments"] == ["dev", "test", "staging", "prod"]


def test_a_database_goes_into_a_namespace_named_by_id_or_name(api, requester, namespace):
    for ref, name in ((str(namespace.pk), "orders"), ("atlas-checkout", "billing"), ("checkout", "stock")):
        response = api.as_(requester).post(URL, {**db_body(ref, storage="5Gi"), "name": name}, format="json")
        assert response.status_code == 201, response.content
        filed = ResourceRequest.objects.get(pk=response.json()["id"])
        assert filed.parent == namespace
        assert filed.spec == {
            "namespace": ref,
            "engine": "postgres",
            "version": "16",
            "storage": "5Gi",
            "plan": "small",
        }


def test_the_database_plan_shows_where_the_password_goes_but_no_password(api, requester, namespace):
    filed = api.as_(requester).post(URL, db_body(), format="json").json()
    objects = api.get(f"{URL}{filed['id']}/plan/").json()["objects"]
    secret = next(o for o in objects if o["kind"] == "Secret")
    assert secret["stringData"]["password"] == "(generated when applied)"
    assert all(o["metadata"].get("namespace") == "atlas-checkout" for o in objects)


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"engine": "mysql"}, "spec.engine"),
        ({"version": "9"}, "spec.version"),
        ({"storage": "lots"}, "spec.storage"),
        ({"storage": "500Gi"}, "spec.storage"),
        ({"plan": "xl"}, "spec.plan"),
        ({"colour": "red"}, "spec"),
    ],
)
def test_bad_database_specs_are_refused(api, requester, namespace, spec, field):
    assert_refused(api.as_(requester).post(URL, db_body(**spec), format="json"), field)


def test_a_database_needs_an_active_namespace_of_the_same_team(api, requester, outsider, zephyr, namespace):
    assert_refused(api.as_(requester).post(URL, db_body("nowhere"), format="json"), "spec.namespace")
    theirs = active_namespace(zephyr, outsider, name="theirs")
    assert_refused(api.post(URL, db_body(str(theirs.pk)), format="json"), "spec.namespace")
    assert_refused(api.post(URL, {**db_body(), "spec": {}}, format="json"), "spec.namespace")


def test_a_database_that_does_not_fit_the_namespace_quota_is_refused_saying_what_is_left(api, requester, namespace):
    assert api.as_(requester).post(URL, {**db_body(storage="15Gi"), "name": "one"}, format="json").status_code == 201
    response = api.post(URL, {**db_body(storage="10Gi"), "name": "two"}, format="json")
    assert response.status_code == 400
    assert response.json()["spec"] == [
        "Does not fit in namespace atlas-checkout's quota: storage 10Gi asked, 5Gi left."
    ]
    assert ResourceRequest.objects.filter(kind="database").count() == 1


def test_an_app_takes_its_template_defaults_and_binds_a_database(api, requester, namespace, atlas):
    app_template("web")
    db = active_namespace(atlas, requester, name="orders")
    type(db).objects.filter(pk=db.pk).update(
        kind="database", parent=namespace, spec={"plan": "small", "storage": "1Gi"}
    )
    response = api.as_(requester).post(
        URL, app_body(database=str(db.pk), replicas=2, host="shop.apps.example.org"), format="json"
    )
    assert response.status_code == 201, response.content
    filed = ResourceRequest.objects.get(pk=response.json()["id"])
    assert filed.spec["image_tag"] == "1.4.2"
    assert filed.frozen["template"]["image_repository"] == "registry.example.org/platform/web"
    plan = api.get(f"{URL}{filed.pk}/plan/").json()["objects"]
    assert [o["kind"] for o in plan] == ["Deployment", "Service", "Ingress"]
    container = plan[0]["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "registry.example.org/platform/web:1.4.2"
    password = next(e for e in container["env"] if e["name"] == "PGPASSWORD")
    assert password["valueFrom"]["secretKeyRef"] == {"name": "orders-credentials", "key": "password"}


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"template": "nope"}, "spec.template"),
        ({"image_tag": "bad tag!"}, "spec.image_tag"),
        ({"replicas": 0}, "spec.replicas"),
        ({"replicas": 11}, "spec.replicas"),
        ({"env": {"1BAD": "x"}}, "spec.env"),
        ({"env": {"OK": 1}}, "spec.env"),
        ({"host": "Not A Host"}, "spec.host"),
        ({"database": "not-a-database"}, "spec.database"),
        ({"replicas": 5}, "spec"),  # 5 x 500m CPU does not fit a small namespace (2 CPU)
    ],
)
def test_bad_app_specs_are_refused(api, requester, namespace, spec, field):
    app_template("web")
    assert_refused(api.as_(requester).post(URL, app_body(**spec), format="json"), field)


def test_a_template_that_takes_no_database_refuses_a_binding(api, requester, namespace):
    app_template("web", accepts_database=False)
    assert_refused(api.as_(requester).post(URL, app_body(database=str(namespace.pk)), format="json"), "spec.database")


def test_workload_names_must_be_dns_1035_and_short(api, requester, namespace):
    assert_refused(api.as_(requester).post(URL, {**db_body(), "name": "1orders"}, format="json"), "name")
    assert_refused(api.post(URL, {**db_body(), "name": "x" * 41}, format="json"), "name")


def test_a_namespace_over_the_team_budget_is_refused_saying_what_is_left(api, requester, atlas):
    atlas.budget_cpu, atlas.budget_namespaces = "6", 2
    atlas.save()
    assert (
        api.as_(requester).post(URL, namespace_body(name="one", spec={"plan": "medium"}), format="json").status_code
        == 201
    )
    response = api.post(URL, namespace_body(name="two", spec={"plan": "medium"}), format="json")
    assert response.status_code == 400
    assert response.json()["spec"] == ["Over team atlas's budget: cpu 4 asked, 2 left."]
    assert api.post(URL, namespace_body(name="three", spec={"plan": "small"}), format="json").status_code == 201
    response = api.post(URL, namespace_body(name="four", spec={"plan": "small"}), format="json")
    assert response.json()["team"] == ["Team atlas has used all 2 namespaces of its budget."]
    assert ResourceRequest.objects.count() == 2
    assert AuditEvent.objects.filter(verb="submitted").count() == 2


def test_a_database_and_an_app_cannot_share_a_name(api, requester, namespace):
    app_template("web")
    assert api.as_(requester).post(URL, {**db_body(storage="1Gi"), "name": "shop"}, format="json").status_code == 201
    response = api.post(URL, app_body(), format="json")
    assert response.status_code == 400
    assert "already has" in response.json()["name"][0]
