"""Every flow works with a ServiceAccount token bound to exactly platform/rbac/leasehold/leasehold.yaml, and what
lies outside that role is refused — against the real API server."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from django.test import override_settings
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic import DynamicClient

from leases import backup
from provisioning import cluster
from provisioning.errors import PermanentClusterError
from provisioning.models import ManagedObject
from provisioning.services.provision import request_provision
from provisioning.services.reconcile import resources_reconcile
from provisioning.services.teardown import resource_teardown
from tests.conftest import require_env
from tests.factories import app_template
from tests.integration.conftest import file_and_provision, token_kubeconfig

pytestmark = pytest.mark.django_db

RBAC = Path(__file__).resolve().parents[2] / "platform" / "rbac" / "leasehold" / "leasehold.yaml"


@pytest.fixture
def service_account_kubeconfig(kube_api, tmp_path, monkeypatch):
    """Apply the shipped RBAC as the cluster admin, then point the service at a token of its ServiceAccount."""
    require_env("LEASEHOLD_K8S_SERVER", "LEASEHOLD_K8S_CA_FILE")
    documents = list(yaml.safe_load_all(RBAC.read_text()))
    account = next(d for d in documents if d["kind"] == "ServiceAccount")["metadata"]
    core = client.CoreV1Api(kube_api)
    try:
        core.create_namespace({"metadata": {"name": account["namespace"]}})
    except ApiException as exc:
        assert exc.status == 409
    dynamic = DynamicClient(kube_api)
    for doc in documents:
        meta = doc["metadata"]
        dynamic.resources.get(api_version=doc["apiVersion"], kind=doc["kind"]).server_side_apply(
            body=doc, name=meta["name"], namespace=meta.get("namespace"), field_manager="platform", force_conflicts=True
        )
    token = core.create_namespaced_service_account_token(
        account["name"],
        account["namespace"],
        {"spec": {"audiences": ["https://kubernetes.default.svc"], "expirationSeconds": 3600}},
    ).status.token
    path = tmp_path / "sa-kubeconfig"
    token_kubeconfig(path, token)
    monkeypatch.setenv("KUBECONFIG", str(path))
    cluster.reset_clients()
    with override_settings(LEASEHOLD_CLUSTER="kubeconfig"):
        yield path
    cluster.reset_clients()


def test_every_flow_works_with_exactly_the_shipped_role(
    service_account_kubeconfig, requester, approver, unique_name, cleanup_namespaces, kube_api
):
    cleanup_namespaces.append(f"atlas-{unique_name}")
    # The service's own seam now speaks with the ServiceAccount's token: listing Secrets is refused.
    with pytest.raises(PermanentClusterError) as exc:
        cluster._request("GET", "/api/v1/secrets")
    assert exc.value.status == 403
    ns = file_and_provision(requester, approver, kind="namespace", name=unique_name, spec={"plan": "medium"})
    db = file_and_provision(
        requester,
        approver,
        kind="database",
        name="orders",
        spec={"namespace": str(ns.resource_id), "version": "16", "storage": "1Gi", "plan": "small"},
    )
    app_template("web")
    app = file_and_provision(
        requester,
        approver,
        kind="app",
        name="shop",
        spec={
            "namespace": str(ns.resource_id),
            "template": "web",
            "replicas": 1,
            "database": str(db.resource_id),
            "host": "shop.apps.example.org",
        },
    )
    # The reconcile reads and re-applies everything with the same rights.
    assert resources_reconcile().errors == []

    for request in (app, db, ns):
        report = resource_teardown(resource=request.resource)
        assert report.refused == [] and (report.deleted or report.gone), report
    apps = client.AppsV1Api(kube_api)
    assert [d.metadata.name for d in apps.list_namespaced_deployment(f"atlas-{unique_name}").items] == []
    assert ManagedObject.objects.filter(resource=app.resource, deleted_at__isnull=True).count() == 0
    live_ns = client.CoreV1Api(kube_api).read_namespace(f"atlas-{unique_name}")
    assert live_ns.metadata.deletion_timestamp is not None


def refused(call) -> bool:
    try:
        call()
    except ApiException as exc:
        return exc.status == 403
    return False


def test_what_lies_outside_the_role_is_refused(service_account_kubeconfig):
    api = config.new_client_from_config(config_file=str(service_account_kubeconfig))
    core, rbac = client.CoreV1Api(api), client.RbacAuthorizationV1Api(api)
    extensions = client.ApiextensionsV1Api(api)

    assert refused(lambda: core.list_secret_for_all_namespaces())
    assert refused(lambda: core.list_namespaced_secret("kube-system"))
    assert refused(lambda: core.list_namespace())
    assert refused(lambda: core.list_node())
    assert refused(lambda: core.patch_node("any", {"metadata": {"labels": {"x": "y"}}}))
    assert refused(lambda: rbac.read_cluster_role("cluster-admin"))
    assert refused(lambda: rbac.create_cluster_role({"metadata": {"name": "leasehold-escalate"}, "rules": []}))
    assert refused(
        lambda: rbac.create_cluster_role_binding(
            {
                "metadata": {"name": "leasehold-escalate"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
                "subjects": [{"kind": "ServiceAccount", "name": "leasehold", "namespace": "leasehold"}],
            }
        )
    )
    assert refused(lambda: extensions.list_custom_resource_definition())
    assert refused(lambda: core.list_namespaced_pod("default"))
    assert refused(lambda: core.create_namespaced_config_map("default", {"metadata": {"name": "x"}}))


def test_binding_any_role_but_edit_is_refused(service_account_kubeconfig, approved_namespace, unique_name):
    request = approved_namespace()
    request_provision(request_id=request.pk)
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "escalate", "namespace": f"atlas-{request.name}"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "admin"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "team-atlas"}],
    }
    with pytest.raises(PermanentClusterError) as exc:
        cluster.apply(binding)
    assert exc.value.status == 403


def test_the_reclaim_pass_may_check_the_backup_claim(service_account_kubeconfig, core, settings):
    # With the backup namespace there, the check reads LEASEHOLD_BACKUP_PVC: refused (403, a ClusterError)
    # before the role granted it, which made every pass report that the backup storage cannot be checked.
    try:
        core.create_namespace({"metadata": {"name": settings.LEASEHOLD_BACKUP_NAMESPACE}})
    except ApiException as exc:
        assert exc.status == 409
    problem = backup.backup_storage_problem()
    assert problem == "" or problem.startswith("persistentvolumeclaims"), problem
