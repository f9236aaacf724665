"""Bad input gets a 400 with field messages, never a 500; an unreachable cluster is told as such,
without the file paths, hosts or settings behind it."""

from __future__ import annotations

import pytest
from django.utils import timezone

from leases.services.opening import lease_open
from provisioning import cluster
from provisioning.models import ManagedObject
from tests.conftest import namespace_body
from tests.factories import active_namespace, app_template

pytestmark = pytest.mark.django_db

# One value of each JSON type a spec field may be sent as by mistake.
WRONG_TYPES = [{}, [], -3, 1.5, True, None]

BODIES = {
    "namespace": namespace_body(name="loadtest", spec={"cpu": "1", "memory": "1Gi", "storage": "1Gi"}),
    "database": {**namespace_body(kind="database", name="orders"), "spec": {"namespace": "checkout"}},
    "app": {**namespace_body(kind="app", name="shop"), "spec": {"namespace": "checkout", "template": "web"}},
}
SPEC_FIELDS = {
    "namespace": ["plan", "cpu", "memory", "storage"],
    "database": ["namespace", "engine", "version", "storage", "plan"],
    "app": ["namespace", "template", "image_tag", "replicas", "env", "database", "host"],
}
# Right after all: null for an optional field means "not given", and an app's env may be empty.
ACCEPTED = {("app", "image_tag", None), ("app", "database", None), ("app", "host", None), ("app", "env", "{}")}


@pytest.mark.parametrize("kind", SPEC_FIELDS)
def test_every_spec_field_refuses_wrong_json_types_with_a_field_error(api, requester, atlas, kind):
    active_namespace(atlas, requester, name="checkout", plan="large")
    app_template("web")
    body = BODIES[kind]
    assert api.as_(requester).post("/api/v1/plan/", body, format="json").status_code == 200
    for field in SPEC_FIELDS[kind]:
        for value in WRONG_TYPES:
            if (kind, field, None if value is None else repr(value)) in ACCEPTED:
                continue
            spec = {"plan": value} if field == "plan" and kind == "namespace" else {**body["spec"], field: value}
            for url in ("/api/v1/plan/", "/api/v1/requests/"):
                response = api.post(url, {**body, "spec": spec}, format="json")
                assert response.status_code == 400, (url, field, value, response.content)
                assert any(key.startswith("spec") for key in response.json()), (field, value, response.json())


def test_a_plan_sent_as_an_object_or_a_list_names_spec_plan(api, requester, atlas):
    for plan in ({}, []):
        for url in ("/api/v1/plan/", "/api/v1/requests/"):
            response = api.as_(requester).post(url, namespace_body(spec={"plan": plan}), format="json")
            assert response.status_code == 400
            assert response.json() == {"spec.plan": ["Must be one of: small, medium, large."]}


def test_expiring_within_out_of_range_is_a_400_with_a_field_message(api, requester, atlas):
    for days in ("1e10", "-1", "NaN", "Infinity", "99999999999999999999", "3651", "soon"):
        response = api.as_(requester).get(f"/api/v1/resources/?expiring_within={days}")
        assert response.status_code == 400, days
        assert list(response.json()) == ["expiring_within"], days
    assert api.get("/api/v1/resources/?expiring_within=3650").status_code == 200


def test_a_huge_page_limit_is_capped_not_a_500(api, requester, atlas):
    active_namespace(atlas, requester)
    for url in ("/api/v1/resources/", "/api/v1/requests/", "/api/v1/approvals/"):
        assert api.as_(requester).get(f"{url}?limit=99999999999999999999").status_code == 200, url


def test_a_json_body_nested_too_deeply_to_decode_is_a_400_not_a_500(api, requester, atlas):
    """Python's JSON decoder gives up on `[[[[...]]]]` with a RecursionError, which DRF let through."""
    body = b"[" * 100_000 + b"]" * 100_000
    for url in ("/api/v1/requests/", "/api/v1/plan/", "/api/v1/auth/token/"):
        response = api.as_(requester).post(url, body, content_type="application/json")
        assert response.status_code == 400, (url, response.status_code)
        assert response.json() == {"detail": "JSON parse error - nested too deeply."}


# --- an unreachable cluster is told as such, without internals -----------------------------------------


@pytest.fixture
def released_namespace(atlas, requester):
    """A leased namespace with one recorded object, so releasing it has to ask the cluster."""
    resource = active_namespace(atlas, requester, name="checkout")
    lease_open(resource=resource)
    ManagedObject.objects.create(
        resource=resource, api_version="v1", kind="Namespace", name="atlas-checkout", applied_at=timezone.now()
    )
    return resource


@pytest.fixture
def no_cluster(settings, tmp_path):
    """The local cluster mode, with its kubeconfig missing."""
    path = tmp_path / "secret-place" / "kubeconfig"
    settings.LEASEHOLD_CLUSTER = "local"
    settings.LEASEHOLD_LOCAL_KUBECONFIG = str(path)
    cluster.reset_clients()
    yield str(path)
    cluster.reset_clients()


@pytest.fixture
def dead_cluster(settings, tmp_path):
    """A kubeconfig whose API server does not answer (nothing listens on port 1)."""
    path = tmp_path / "kubeconfig"
    path.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: dead\n"
        "clusters: [{name: dead, cluster: {server: 'https://127.0.0.1:1', insecure-skip-tls-verify: true}}]\n"
        "users: [{name: dead, user: {token: not-a-token}}]\n"
        "contexts: [{name: dead, context: {cluster: dead, user: dead}}]\n"
    )
    settings.LEASEHOLD_CLUSTER = "local"
    settings.LEASEHOLD_LOCAL_KUBECONFIG = str(path)
    settings.LEASEHOLD_K8S_RETRIES = 1
    cluster.reset_clients()
    yield "127.0.0.1"
    cluster.reset_clients()


@pytest.mark.parametrize("outage", ["no_cluster", "dead_cluster"])
def test_the_api_says_only_that_the_cluster_is_unreachable(api, requester, released_namespace, outage, request, caplog):
    internals = request.getfixturevalue(outage)
    response = api.as_(requester).post(f"/api/v1/resources/{released_namespace.pk}/release/")
    # The release is recorded and the follow-up deletes once the cluster answers: no 5xx, no internals.
    assert response.status_code == 200
    assert response.json()["state"] == "reclaiming"
    assert internals not in response.content.decode() and "LEASEHOLD_CLUSTER" not in response.content.decode()
    assert internals in caplog.text  # the details are in the log, for operators
    released_namespace.lease.refresh_from_db()
    assert released_namespace.lease.state == "reclaiming"


@pytest.mark.parametrize("outage", ["no_cluster", "dead_cluster"])
def test_the_web_says_only_that_the_cluster_is_unreachable(client, requester, released_namespace, outage, request):
    internals = request.getfixturevalue(outage)
    client.force_login(requester)
    response = client.post(f"/resources/{released_namespace.pk}/release/", follow=True)
    assert response.status_code == 200
    page = response.content.decode()
    assert "cluster cannot be reached right now" in page
    assert internals not in page and "LEASEHOLD_CLUSTER" not in page
