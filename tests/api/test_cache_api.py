"""Cache requests through the API: the catalog, validation, quota admission, the plan, bindings from apps."""

import pytest

from approvals.policy import PolicyError, parse_policy
from requests_app.models import ResourceRequest
from tests.api.test_kinds_api import app_body
from tests.factories import active_child, active_namespace, app_template

pytestmark = pytest.mark.django_db
URL = "/api/v1/requests/"


def cache_body(namespace="checkout", name="sessions", **spec):
    return {
        "kind": "cache",
        "team": "atlas",
        "name": name,
        "environment": "dev",
        "lease_days": 14,
        "justification": "sessions for the shop",
        "spec": {"namespace": namespace, "engine": "redis", **spec},
    }


@pytest.fixture
def namespace(atlas, requester):
    return active_namespace(atlas, requester, plan="small")  # 2 CPU, 4Gi, 20Gi


def cache_spec(**spec):
    return {"namespace": "checkout", "engine": "redis", "version": "7", "plan": "small", "persistence": False, **spec}


def test_the_catalog_offers_a_cache_that_is_not_backed_up(api, requester):
    body = api.as_(requester).get("/api/v1/catalog/").json()
    cache = next(k for k in body["kinds"] if k["kind"] == "cache")
    assert cache["backup"] == "not backed up: a cache"
    assert cache["versions"] == ["7", "6.2"]
    assert set(cache["plans"]) == {"small", "medium", "large"}
    assert cache["schema"]["properties"]["persistence"]["type"] == "boolean"
    app = next(k for k in body["kinds"] if k["kind"] == "app")
    assert app["binds_to"] == {"database": "database", "cache": "cache"}
    assert "cache" in app["schema"]["properties"]


def test_a_cache_is_filed_with_its_defaults_into_the_namespace(api, requester, namespace):
    response = api.as_(requester).post(URL, cache_body(), format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["kind"], body["display_name"]) == ("cache", "atlas-checkout / sessions")
    filed = ResourceRequest.objects.get(pk=body["id"])
    assert filed.parent == namespace
    assert filed.spec == cache_spec()


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"engine": "memcached"}, "spec.engine"),
        ({"version": "5"}, "spec.version"),
        ({"plan": "huge"}, "spec.plan"),
        ({"persistence": "yes"}, "spec.persistence"),
        ({"maxmemory": "1gb"}, "spec"),
        ({"namespace": "elsewhere"}, "spec.namespace"),
    ],
)
def test_a_bad_cache_spec_is_a_field_error(api, requester, namespace, spec, field):
    response = api.as_(requester).post(URL, cache_body(**spec), format="json")
    assert response.status_code == 400, response.content
    assert field in response.json(), response.json()
    assert not ResourceRequest.objects.filter(kind="cache").exists()


def test_a_cache_that_does_not_fit_the_namespace_quota_is_refused(api, requester, namespace):
    # large: 2 CPU and 4Gi of memory limits, the whole small namespace; nothing else fits beside it.
    assert api.as_(requester).post(URL, cache_body(plan="large"), format="json").status_code == 201
    response = api.as_(requester).post(URL, cache_body(name="more", plan="small"), format="json")
    assert response.status_code == 400
    assert "Does not fit in namespace atlas-checkout's quota" in response.json()["spec"][0]
    assert "memory" in response.json()["spec"][0]


def test_persistence_counts_the_plans_volume_against_the_quota(api, requester, atlas):
    active_namespace(atlas, requester, name="checkout", cpu="8", memory="16Gi", storage="10Gi")
    response = api.as_(requester).post(URL, cache_body(plan="large", persistence=True), format="json")
    assert response.status_code == 400  # a 16Gi volume in a 10Gi namespace
    assert "storage" in response.json()["spec"][0]
    assert api.as_(requester).post(URL, cache_body(plan="large"), format="json").status_code == 201


def test_a_cache_shares_its_name_with_databases_and_apps_of_the_team(api, requester, namespace):
    active_child(namespace, "database", "sessions", {"namespace": "checkout", "plan": "small", "storage": "1Gi"})
    response = api.as_(requester).post(URL, cache_body(), format="json")
    assert response.status_code == 400
    assert "already has a database named" in response.json()["name"][0]


def test_the_plan_shows_where_the_password_goes_but_no_password(api, requester, namespace):
    filed = api.as_(requester).post(URL, cache_body(persistence=True), format="json").json()
    objects = api.get(f"{URL}{filed['id']}/plan/").json()["objects"]
    assert [o["kind"] for o in objects] == ["Secret", "Service", "StatefulSet"]
    secret = objects[0]["stringData"]
    assert secret["password"] == "(generated when applied)"
    assert secret["REDIS_URL"] == "redis://:(generated when applied)@sessions.atlas-checkout.svc:6379/0"
    sts = objects[2]
    assert sts["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"] == "1Gi"
    assert all(o["metadata"]["labels"]["leasehold.io/team"] == "atlas" for o in objects)


def test_an_app_binds_to_a_cache_and_its_plan_reads_redis_url_from_the_secret(api, requester, namespace):
    app_template("web", cpu_limit="100m", memory_limit="128Mi")
    cache = active_child(namespace, "cache", "sessions", cache_spec())
    response = api.as_(requester).post(URL, app_body(cache=str(cache.pk)), format="json")
    assert response.status_code == 201, response.content
    objects = api.get(f"{URL}{response.json()['id']}/plan/").json()["objects"]
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    env = {e["name"]: e for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["REDIS_URL"]["valueFrom"]["secretKeyRef"] == {"name": "sessions-credentials", "key": "REDIS_URL"}
    assert "PGPASSWORD" not in env


def test_an_app_may_bind_only_to_an_active_cache_of_its_namespace(api, requester, namespace, atlas):
    app_template("web", cpu_limit="100m", memory_limit="128Mi")
    other = active_namespace(atlas, requester, name="other", plan="small")
    elsewhere = active_child(other, "cache", "sessions", cache_spec(namespace="other"))
    database = active_child(
        namespace, "database", "orders", {"namespace": "checkout", "plan": "small", "storage": "1Gi"}
    )
    for ref in (str(elsewhere.pk), str(database.pk), "not-an-id"):
        response = api.as_(requester).post(URL, app_body(cache=ref), format="json")
        assert response.status_code == 400, ref
        assert "spec.cache" in response.json()
    assert not ResourceRequest.objects.filter(kind="app").exists()


def test_the_approval_policy_may_match_caches():
    policy = parse_policy("rules:\n  - name: caches\n    match: {kind: [cache], plan: [small]}\n    steps: []\n")
    assert policy.rules[0].name == "caches"
    with pytest.raises(PolicyError, match="kind"):
        parse_policy("rules:\n  - name: typo\n    match: {kind: [cachee]}\n    steps: []\n")


def test_the_web_form_files_a_cache(client, requester, namespace):
    client.force_login(requester)
    page = client.get("/requests/new/?kind=cache").content.decode()
    assert 'name="persistence"' in page
    response = client.post(
        "/requests/new/",
        {
            "kind": "cache",
            "namespace": str(namespace.pk),
            "name": "sessions",
            "environment": "dev",
            "version": "6.2",
            "plan": "small",
            "persistence": "on",
            "lease_days": 7,
            "justification": "",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    assert ResourceRequest.objects.get(kind="cache").spec == cache_spec(
        namespace=str(namespace.pk), version="6.2", persistence=True
    )
