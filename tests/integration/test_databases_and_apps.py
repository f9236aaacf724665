"""A database and an app bound to it, applied to the real Kubernetes API server."""

import base64

import pytest
from kubernetes import client

from provisioning.models import ManagedObject
from provisioning.services.plan import request_plan
from provisioning.services.provision import request_provision
from requests_app.models import ResourceRequest
from tests.factories import app_template
from tests.integration.conftest import file_and_provision

pytestmark = pytest.mark.django_db


@pytest.fixture
def namespace(approved_namespace):
    request = approved_namespace(plan="medium")
    request_provision(request_id=request.pk)
    request.refresh_from_db()
    assert request.state == "active"
    return request.resource


def test_a_database_and_a_bound_app_are_applied_as_planned(namespace, requester, approver, kube_api, core, api):
    ns = namespace.namespace_name
    db_request = file_and_provision(
        requester,
        approver,
        kind="database",
        name="orders",
        spec={"namespace": ns, "version": "16", "storage": "5Gi", "plan": "small"},
    )
    db = db_request.resource

    secret = core.read_namespaced_secret("orders-credentials", ns)
    password = base64.b64decode(secret.data["password"]).decode()
    assert len(password) >= 24
    assert base64.b64decode(secret.data["host"]).decode() == f"orders.{ns}.svc"
    # The namespace enforces `restricted` (inert on the 1.20 test server, which has no Pod Security
    # Admission; tests/unit/test_pod_security.py checks the rules), and the API server kept every
    # field that lets our pods pass it.
    assert core.read_namespace(ns).metadata.labels["pod-security.kubernetes.io/enforce"] == "restricted"
    sts = client.AppsV1Api(kube_api).read_namespaced_stateful_set("orders", ns)
    assert sts.metadata.labels["leasehold.io/resource"] == str(db.pk)
    assert sts.spec.template.spec.automount_service_account_token is False
    assert sts.spec.template.spec.security_context.seccomp_profile.type == "RuntimeDefault"
    assert sts.spec.volume_claim_templates[0].spec.resources.requests["storage"] == "5Gi"
    service = core.read_namespaced_service("orders", ns)
    assert [(p.port, p.protocol) for p in service.spec.ports] == [(5432, "TCP")]

    body = api.as_(requester).get(f"/api/v1/resources/{db.pk}/").json()
    assert body["connection"] == {
        "host": f"orders.{ns}.svc",
        "port": 5432,
        "database": "orders",
        "user": "orders",
        "secret_name": "orders-credentials",
    }
    # The password is nowhere in the API, the audit trail or the plan.
    assert password not in api.get(f"/api/v1/requests/{db_request.pk}/").content.decode()
    assert password not in api.get(f"/api/v1/resources/{db.pk}/").content.decode()
    assert password not in str(request_plan(request=db_request))

    # A re-run does not rotate the password.
    ResourceRequest.objects.filter(pk=db_request.pk)  # (state stays active; the service must leave it alone)
    request_provision(request_id=db_request.pk)
    assert core.read_namespaced_secret("orders-credentials", ns).data["password"] == secret.data["password"]

    app_template("web")
    app_request = file_and_provision(
        requester,
        approver,
        kind="app",
        name="shop",
        spec={
            "namespace": str(namespace.pk),
            "template": "web",
            "replicas": 2,
            "database": str(db.pk),
            "host": "shop.apps.example.org",
            "env": {"FEATURE": "on"},
        },
    )
    deployment = client.AppsV1Api(kube_api).read_namespaced_deployment("shop", ns)
    assert deployment.spec.replicas == 2
    pod = deployment.spec.template.spec
    assert pod.automount_service_account_token is False
    assert (pod.security_context.run_as_non_root, pod.security_context.seccomp_profile.type) == (True, "RuntimeDefault")
    assert pod.containers[0].security_context.capabilities.drop == ["ALL"]
    assert pod.containers[0].security_context.allow_privilege_escalation is False
    env = {e.name: e for e in deployment.spec.template.spec.containers[0].env}
    assert env["FEATURE"].value == "on"
    assert env["PGPASSWORD"].value is None
    assert env["PGPASSWORD"].value_from.secret_key_ref.name == "orders-credentials"
    ingress = client.NetworkingV1Api(kube_api).read_namespaced_ingress("shop", ns)
    assert ingress.spec.rules[0].host == "shop.apps.example.org"
    applied = {(o.kind, o.name) for o in ManagedObject.objects.filter(resource=app_request.resource)}
    planned = {(m["kind"], m["metadata"]["name"]) for m in request_plan(request=app_request)}
    assert applied == planned == {("Deployment", "shop"), ("Service", "shop"), ("Ingress", "shop")}
