"""Clusters as data: the admin registers them (audited, only a path to the credentials), namespace requests
are placed on one (named, or the least committed that serves the environment and takes requests), what
lives in a namespace goes to its cluster, names are unique per cluster, a cluster's capacity is admitted,
and `GET /api/v1/clusters/` lists where the caller may place (CONTRACT.md §6).

Provisioning still drives the `default` cluster only: these tests file and read, they apply nothing."""

from __future__ import annotations

import pytest
from django.urls import reverse

from requests_app.models import AuditEvent, Cluster, Resource, ResourceRequest
from requests_app.services import request_submit
from tests.conftest import namespace_body
from tests.factories import ResourceFactory, UserFactory, active_namespace

pytestmark = pytest.mark.django_db


def default() -> Cluster:
    """The default cluster, as migration 0013 makes it (or a filing makes it after a flushed test)."""
    from requests_app.models import default_cluster_pk

    return Cluster.objects.get(pk=default_cluster_pk())


def only(*clusters: Cluster) -> None:
    """Let only these clusters take new requests (the default one stops)."""
    Cluster.objects.exclude(pk__in=[c.pk for c in clusters]).update(accepting=False)


def post(api, user, **overrides):
    return api.as_(user).post("/api/v1/requests/", namespace_body(**overrides), format="json")


# --- the default cluster ----------------------------------------------------------------------------------


def test_without_a_cluster_in_the_body_a_request_lands_on_the_default_cluster_as_before(api, requester):
    response = post(api, requester)
    assert response.status_code == 201, response.json()
    assert response.json()["cluster"] == "default"
    assert default().environments == ["dev", "test", "staging", "prod"]
    assert (default().accepting, default().healthy) == (True, None)
    resource = ResourceFactory(team=requester.groups.get().team, name="made-by-orm")
    got = api.as_(requester).get(f"/api/v1/resources/{resource.pk}/").json()
    assert got["cluster"] == "default"  # a row saved without a cluster is on the default one


# --- placement ---------------------------------------------------------------------------------------------


def test_placement_takes_the_least_committed_cluster_that_serves_the_environment(api, requester, atlas):
    a = Cluster.objects.create(name="dc-a", environments=["dev"], allocatable_cpu="40")
    b = Cluster.objects.create(name="dc-b", environments=["dev"], allocatable_cpu="40")
    Cluster.objects.create(name="prod-only", environments=["prod"], allocatable_cpu="1000")
    only(a, b, Cluster.objects.get(name="prod-only"))
    first = post(api, requester, name="one").json()
    second = post(api, requester, name="two").json()
    third = post(api, requester, name="three", spec={"plan": "small"}).json()
    # dc-a and dc-b start empty (a tie, by name); then each goes where less of the capacity is committed.
    assert [first["cluster"], second["cluster"], third["cluster"]] == ["dc-a", "dc-b", "dc-a"]
    assert post(api, requester, name="four", environment="prod").json()["cluster"] == "prod-only"


@pytest.mark.parametrize(
    ("cluster", "message"),
    [
        ("nowhere", "No cluster named 'nowhere'."),
        ("prod-only", "Cluster prod-only does not serve dev."),
        ("closed", "Cluster closed does not take new requests."),
    ],
)
def test_a_named_cluster_must_exist_serve_the_environment_and_take_requests(api, requester, cluster, message):
    Cluster.objects.create(name="prod-only", environments=["prod"])
    Cluster.objects.create(name="closed", environments=["dev"], accepting=False)
    response = post(api, requester, cluster=cluster)
    assert response.status_code == 400
    assert response.json()["cluster"] == [message]
    assert not ResourceRequest.objects.exists()


def test_no_cluster_for_the_environment_is_a_400_not_a_500(api, requester):
    Cluster.objects.update(accepting=False)
    response = post(api, requester)
    assert (response.status_code, response.json()) == (400, {"cluster": ["No cluster takes new dev requests."]})


def test_a_named_cluster_is_used_and_shown_on_the_pages(api, client, requester, atlas):
    Cluster.objects.create(name="dc-b", environments=["dev"])
    filed = post(api, requester, cluster="dc-b").json()
    assert filed["cluster"] == "dc-b"
    client.force_login(requester)
    page = client.get(reverse("request-detail", args=[filed["id"]])).content.decode()
    assert '<th scope="row">Cluster</th><td colspan="3">dc-b</td>' in page
    namespace = active_namespace(atlas, requester, name="shown", cluster=Cluster.objects.get(name="dc-b"))
    page = client.get(reverse("resource-detail", args=[namespace.pk])).content.decode()
    assert '<th scope="row">Cluster</th><td colspan="3">dc-b</td>' in page


def test_the_web_form_offers_the_clusters_and_places_on_the_one_chosen(client, requester):
    Cluster.objects.create(name="dc-b", environments=["dev", "test"], region="eu-west-1a")
    client.force_login(requester)
    form = client.get(reverse("request-new") + "?kind=namespace").content.decode()
    assert '<option value="dc-b">dc-b (dev, test, eu-west-1a)</option>' in form
    body = {"team": "atlas", "name": "web", "environment": "dev", "cluster": "dc-b", "plan": "small"}
    response = client.post(reverse("request-new"), {**body, "kind": "namespace", "lease_days": 7})
    assert response.status_code == 302, response.content.decode()
    assert ResourceRequest.objects.get().cluster.name == "dc-b"


# --- what lives in a namespace ------------------------------------------------------------------------


def test_a_database_goes_to_its_namespace_cluster_and_another_cluster_is_refused(api, requester, atlas):
    dc_b = Cluster.objects.create(name="dc-b", environments=["dev"])
    namespace = active_namespace(atlas, requester, name="shop", plan="medium", cluster=dc_b)
    body = {
        "kind": "database",
        "team": "atlas",
        "name": "orders",
        "environment": "dev",
        "spec": {"namespace": str(namespace.pk), "engine": "postgres", "version": "16", "plan": "small"},
    }
    refused = api.as_(requester).post("/api/v1/requests/", {**body, "cluster": "default"}, format="json")
    assert refused.status_code == 400
    assert refused.json()["cluster"] == ["A database goes to its namespace's cluster (dc-b), not default."]
    filed = api.as_(requester).post("/api/v1/requests/", body, format="json")
    assert filed.status_code == 201, filed.json()
    assert filed.json()["cluster"] == "dc-b"


def test_names_are_unique_per_cluster(api, requester, atlas):
    dc_b = Cluster.objects.create(name="dc-b", environments=["dev"])
    on_default = post(api, requester, name="web", cluster="default")
    on_b = post(api, requester, name="web", cluster="dc-b")
    again = post(api, requester, name="web", cluster="dc-b")
    assert (on_default.status_code, on_b.status_code, again.status_code) == (201, 201, 400)
    assert "already has a namespace named “web”" in again.json()["name"][0]
    # The same namespace on two clusters: a database names its namespace by id, or by name and cluster.
    for cluster in (default(), dc_b):
        active_namespace(atlas, requester, name="shop", cluster=cluster)
    body = {
        "kind": "database",
        "team": "atlas",
        "name": "orders",
        "environment": "dev",
        "spec": {"namespace": "atlas-shop", "engine": "postgres", "version": "16", "plan": "small"},
    }
    ambiguous = api.as_(requester).post("/api/v1/requests/", body, format="json")
    assert ambiguous.status_code == 400
    assert "on more than one cluster" in ambiguous.json()["spec.namespace"][0]
    placed = api.as_(requester).post("/api/v1/requests/", {**body, "cluster": "dc-b"}, format="json")
    assert placed.status_code == 201, placed.json()
    assert placed.json()["cluster"] == "dc-b"


def test_the_database_refuses_a_second_live_name_on_the_same_cluster(requester, atlas):
    from django.db import IntegrityError

    dc_b = Cluster.objects.create(name="dc-b", environments=["dev"])
    request_submit(requester=requester, **namespace_body(name="race", cluster="dc-b"))
    row = dict(team=atlas, requester=requester, kind="namespace", name="race", environment="dev", lease_days=1)
    ResourceRequest.objects.create(**row, cluster=default())  # another cluster: allowed
    with pytest.raises(IntegrityError):
        ResourceRequest.objects.create(**row, cluster=dc_b)


# --- capacity ------------------------------------------------------------------------------------------


def test_a_request_over_a_clusters_capacity_is_refused_with_what_is_left(api, requester, atlas):
    # 4 CPU allocatable × 1.5 = 6 admitted; a medium namespace (4 CPU) is committed already.
    small = Cluster.objects.create(name="small-dc", environments=["dev"], allocatable_cpu="4", overcommit="1.5")
    only(small)
    assert post(api, requester, name="first", spec={"plan": "medium"}).status_code == 201
    refused = post(api, requester, name="second", spec={"plan": "medium"})
    assert refused.status_code == 400
    assert refused.json()["spec"] == ["Over cluster small-dc's capacity: cpu 4 asked, 2 left."]
    assert post(api, requester, name="third", spec={"plan": "small"}).status_code == 201  # 2 CPU fits
    named = post(api, requester, name="fourth", spec={"plan": "small"}, cluster="small-dc")
    assert named.json()["spec"] == ["Over cluster small-dc's capacity: cpu 2 asked, 0 left."]


def test_placement_passes_over_a_full_cluster(api, requester):
    full = Cluster.objects.create(name="a-full", environments=["dev"], allocatable_cpu="1")
    roomy = Cluster.objects.create(name="b-roomy", environments=["dev"], allocatable_cpu="10", allocatable_memory="1Ti")
    only(full, roomy)
    assert post(api, requester).json()["cluster"] == "b-roomy"


# --- GET /api/v1/clusters/ ---------------------------------------------------------------------------


def test_the_cluster_list_gives_capacity_and_committed_and_never_the_connection(api, requester, admin_user):
    dc = Cluster.objects.create(
        name="dc-b",
        environments=["dev", "prod"],
        region="eu-west-1a",
        api_server="https://api.dc-b.example.org:6443",
        auth="token",
        credentials_path="/var/run/leasehold/dc-b/token",
        allocatable_cpu="64",
        allocatable_memory="256Gi",
        overcommit="1.5",
    )
    Cluster.objects.create(name="closed", environments=["dev"], accepting=False)
    post(api, requester, cluster="dc-b")  # medium: 4 CPU, 8Gi, 50Gi
    body = api.as_(requester).get("/api/v1/clusters/").json()
    assert [c["name"] for c in body] == ["dc-b", "default"]  # a member sees those taking requests
    assert body[0] == {
        "name": "dc-b",
        "environments": ["dev", "prod"],
        "region": "eu-west-1a",
        "accepting": True,
        "capacity": {"cpu": "96", "memory": "384Gi", "storage": None},
        "committed": {"cpu": "4", "memory": "8Gi", "storage": "50Gi"},
        "healthy": None,
        "health_checked_at": None,
        "unhealthy_since": None,
    }
    text = api.as_(admin_user).get("/api/v1/clusters/").content.decode()
    assert [c["name"] for c in api.as_(admin_user).get("/api/v1/clusters/").json()] == ["closed", "dc-b", "default"]
    assert dc.credentials_path not in text and "example.org" not in text


def test_the_cluster_list_gives_the_health_the_check_recorded(api, requester):
    from django.utils import timezone

    since = timezone.now().replace(microsecond=0)
    Cluster.objects.filter(pk=default().pk).update(healthy=False, unhealthy_since=since, health_checked_at=since)
    (got,) = api.as_(requester).get("/api/v1/clusters/").json()
    assert (got["healthy"], got["unhealthy_since"], got["health_checked_at"]) == (
        False,
        since.isoformat().replace("+00:00", "Z"),
        since.isoformat().replace("+00:00", "Z"),
    )


def test_who_is_in_no_team_may_place_nowhere(api):
    approver = UserFactory(username="frank", groups=["platform-approvers"])
    assert api.as_(approver).get("/api/v1/clusters/").json() == []


def test_the_openapi_schema_describes_the_cluster_list(client):
    import yaml

    schema = yaml.safe_load(client.get("/api/schema/").content)
    listed = schema["paths"]["/api/v1/clusters/"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    cluster = schema["components"]["schemas"][listed["items"]["$ref"].rsplit("/", 1)[-1]]
    assert set(cluster["properties"]) == {
        "name",
        "environments",
        "region",
        "accepting",
        "capacity",
        "committed",
        "healthy",
        "health_checked_at",
        "unhealthy_since",
    }
    for nullable in ("healthy", "health_checked_at", "unhealthy_since"):
        assert cluster["properties"][nullable]["nullable"] is True
    assert "cluster" in schema["components"]["schemas"]["Request"]["properties"]
    assert "cluster" in schema["components"]["schemas"]["RequestCreateRequest"]["properties"]


# --- the admin -------------------------------------------------------------------------------------------

ADMIN_BODY = {
    "name": "dc-b",
    "api_server": "https://api.dc-b.example.org:6443",
    "auth": "token",
    "credentials_path": "/var/run/leasehold/dc-b/token",
    "environments": ["dev", "test"],
    "region": "eu-west-1a",
    "allocatable_cpu": "64",
    "allocatable_memory": "256Gi",
    "allocatable_storage": "",
    "overcommit": "1.5",
    "accepting": "on",
    "timeout_seconds": "10",
}


def test_an_admin_registers_a_cluster_and_the_change_is_audited(client, admin_user):
    client.force_login(admin_user)
    response = client.post(reverse("admin:requests_app_cluster_add"), ADMIN_BODY)
    assert response.status_code == 302, response.content.decode()
    cluster = Cluster.objects.get(name="dc-b")
    assert (cluster.environments, cluster.credentials_path) == (["dev", "test"], "/var/run/leasehold/dc-b/token")
    event = AuditEvent.objects.get(verb="cluster_created")
    assert (event.actor, event.target_id) == (admin_user, str(cluster.pk))
    assert "credentials_path: '/var/run/leasehold/dc-b/token'" in event.detail
    client.post(reverse("admin:requests_app_cluster_change", args=[cluster.pk]), {**ADMIN_BODY, "accepting": ""})
    assert AuditEvent.objects.get(verb="cluster_changed").detail == "accepting: 'True' → 'False'"


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"credentials_path": "dc-b/token"}, "credentials_path", "An absolute path to a mounted file"),
        ({"credentials_path": ""}, "credentials_path", "Give the path of the mounted file."),
        ({"auth": "in-cluster"}, "credentials_path", "In-cluster needs no file"),
        ({"api_server": ""}, "api_server", "A token needs the API server's URL."),
        ({"allocatable_cpu": "lots"}, "allocatable_cpu", "Not a positive Kubernetes quantity"),
        ({"overcommit": "0"}, "overcommit", "From 0.1 to 100."),
    ],
)
def test_a_bad_cluster_is_a_form_error(client, admin_user, change, field, message):
    client.force_login(admin_user)
    response = client.post(reverse("admin:requests_app_cluster_add"), {**ADMIN_BODY, **change})
    assert response.status_code == 200
    assert message in " ".join(response.context["adminform"].form.errors[field])
    assert not Cluster.objects.filter(name="dc-b").exists()


def test_a_cluster_with_requests_cannot_be_deleted(client, admin_user, api, requester):
    dc = Cluster.objects.create(name="dc-b", environments=["dev"])
    post(api, requester, cluster="dc-b")
    client.force_login(admin_user)
    client.post(reverse("admin:requests_app_cluster_delete", args=[dc.pk]), {"post": "yes"})
    assert Cluster.objects.filter(pk=dc.pk).exists()
    assert not AuditEvent.objects.filter(verb="cluster_deleted").exists()


def test_resources_keep_their_cluster_in_the_admin_lists(client, admin_user, atlas, requester):
    dc = Cluster.objects.create(name="dc-b", environments=["dev"])
    active_namespace(atlas, requester, name="listed", cluster=dc)
    client.force_login(admin_user)
    page = client.get(reverse("admin:requests_app_resource_changelist") + f"?cluster__id__exact={dc.pk}")
    assert page.status_code == 200
    assert [r.cluster.name for r in page.context["cl"].result_list] == ["dc-b"]
    assert Resource.objects.filter(cluster=dc).count() == 1
