"""The whole path on real services with a real Celery worker process:
LDAP login → API request → approval by another LDAP user → objects in the API server → lease →
`reclaim_leases --now` past expiry and grace → objects gone → everything `reclaimed`.
"""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

from django.core.management import call_command
from kubernetes import client
from rest_framework.test import APIClient

from leases.models import Lease
from requests_app.models import Resource, ResourceRequest
from tests.conftest import namespace_body

from .conftest import namespace_gone, wait_for


def login(username: str) -> APIClient:
    response = APIClient().post("/api/v1/auth/token/", {"username": username, "password": "leasehold"}, format="json")
    assert response.status_code == 200, response.content
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {response.json()['token']}")
    return api


def reclaim(now) -> str:
    out = StringIO()
    call_command("reclaim_leases", "--now", now.isoformat(), stdout=out)
    return out.getvalue()


def test_a_namespace_goes_from_request_to_reclaimed(worker, kube_api, core, cleanup_namespaces, unique_name):
    dana, frank, olga = login("dana"), login("frank"), login("olga")
    ns_name = f"atlas-{unique_name}"
    cleanup_namespaces.append(ns_name)

    # Bad names are refused and create nothing.
    assert dana.post("/api/v1/requests/", namespace_body(name="Not_A_Label"), format="json").status_code == 400
    assert ResourceRequest.objects.count() == 0

    filed = dana.post("/api/v1/requests/", namespace_body(name=unique_name), format="json")
    assert filed.status_code == 201, filed.content
    request_id = filed.json()["id"]
    step_id = filed.json()["approval"]["steps"][0]["id"]

    # An outsider cannot see it; the requester cannot approve it.
    assert olga.get(f"/api/v1/requests/{request_id}/").status_code == 404
    assert dana.post(f"/api/v1/approvals/{step_id}/approve/", {}, format="json").status_code == 403

    assert [s["id"] for s in frank.get("/api/v1/approvals/").json()["results"]] == [step_id]
    approved = frank.post(f"/api/v1/approvals/{step_id}/approve/", {"comment": "go"}, format="json")
    assert approved.status_code == 200, approved.content

    def active():
        state = dana.get(f"/api/v1/requests/{request_id}/").json()["state"]
        assert state not in ("failed", "rejected"), state
        return state == "active"

    wait_for(active, timeout=90, what="the worker to provision the namespace")

    request = ResourceRequest.objects.get(pk=request_id)
    resource = Resource.objects.get(pk=request.resource_id)
    ns = core.read_namespace(ns_name)
    assert ns.metadata.labels["leasehold.io/resource"] == str(resource.pk)
    assert ns.metadata.labels["app.kubernetes.io/managed-by"] == "leasehold"
    assert ns.metadata.labels["leasehold.io/team"] == "atlas"
    assert ns.metadata.annotations["leasehold.io/owner"] == "dana"
    hard = core.read_namespaced_resource_quota("leasehold", ns_name).spec.hard
    assert (hard["requests.cpu"], hard["requests.memory"], hard["requests.storage"]) == ("4", "8Gi", "50Gi")
    assert client.NetworkingV1Api(kube_api).read_namespaced_network_policy("leasehold-default", ns_name)

    body = dana.get(f"/api/v1/resources/{resource.pk}/").json()
    assert body["state"] == "active"
    assert body["lease"]["state"] == "active"
    assert {(o["kind"], o["name"]) for o in body["objects"]} >= {("Namespace", ns_name), ("ResourceQuota", "leasehold")}
    lease = Lease.objects.get(resource=resource)
    assert lease.expires_at == resource.activated_at + timedelta(days=14)

    reclaim(lease.expires_at + timedelta(seconds=1))
    lease.refresh_from_db()
    assert lease.state == "grace"

    def reclaimed():
        reclaim(lease.grace_until + timedelta(seconds=1))
        lease.refresh_from_db()
        return lease.state == "reclaimed"

    wait_for(reclaimed, timeout=90, interval=1, what="the reclaimer to delete the namespace")
    assert namespace_gone(core, ns_name)
    assert dana.get(f"/api/v1/requests/{request_id}/").json()["state"] == "reclaimed"
    assert dana.get(f"/api/v1/resources/{resource.pk}/").json()["state"] == "reclaimed"
