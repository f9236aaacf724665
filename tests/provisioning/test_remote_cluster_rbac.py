"""Onboarding a cluster, against a second real API server: its admin applies platform/rbac/remote-cluster,
the cluster's token controller fills the token Secret, its token and ca.crt are written into a directory
as a mounted Secret would be, and the cluster is registered with auth=token. Leasehold then provisions
there with exactly that role, and what lies outside it is refused (403 -> PermanentClusterError)."""

from __future__ import annotations

import base64
import os
import shutil

import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic import DynamicClient

from leases import backup
from provisioning import cluster
from provisioning.errors import PermanentClusterError
from requests_app.models import Cluster
from tests.deploy.conftest import ROOT, kustomize
from tests.integration.conftest import wait_for
from tests.integration.test_two_control_planes import cluster_b_client

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.integration,
    pytest.mark.skipif(
        not os.environ.get("LEASEHOLD_K8S_B_SERVER"),
        reason="LEASEHOLD_K8S_B_SERVER is not set: start the services with "
        "`platform/with-services.sh postgres redis ldap k8s k8s-b -- ...`",
    ),
]


@pytest.fixture(scope="module")
def admin_b():
    with cluster_b_client() as api:
        yield api


@pytest.fixture(scope="module")
def onboarded_secret(admin_b) -> dict[str, bytes]:
    """Apply remote-cluster/ to B as its admin (server-side apply, as `kubectl apply --server-side`) and
    wait for the token controller to fill the token Secret; its data, decoded."""
    dynamic = DynamicClient(admin_b)
    objects = kustomize(ROOT / "platform" / "rbac" / "remote-cluster")
    for doc in objects:
        meta = doc["metadata"]
        dynamic.resources.get(api_version=doc["apiVersion"], kind=doc["kind"]).server_side_apply(
            body=doc, name=meta["name"], namespace=meta.get("namespace"), field_manager="platform", force_conflicts=True
        )
    # The backup namespace and claim, as README "Onboarding a cluster" has the platform team apply them.
    for doc in yaml.safe_load_all((ROOT / "deploy" / "base" / "backups.yaml").read_text()):
        dynamic.resources.get(api_version=doc["apiVersion"], kind=doc["kind"]).server_side_apply(
            body=doc, name=doc["metadata"]["name"], namespace=doc["metadata"].get("namespace"), field_manager="platform"
        )
    token = next(d for d in objects if d["kind"] == "Secret")["metadata"]
    core = client.CoreV1Api(admin_b)

    def filled():
        data = core.read_namespaced_secret(token["name"], token["namespace"]).data or {}
        return data if {"token", "ca.crt"} <= set(data) else None

    data = wait_for(filled, timeout=60, what="the token controller fills leasehold-token on cluster B")
    return {key: base64.b64decode(value) for key, value in data.items()}


@pytest.fixture
def cluster_b(onboarded_secret, tmp_path) -> Cluster:
    """Cluster "b", registered with auth=token: token and ca.crt in a directory, as the Secret's volume."""
    mounted = tmp_path / "clusters" / "b"
    mounted.mkdir(parents=True)
    for key in ("token", "ca.crt"):
        (mounted / key).write_bytes(onboarded_secret[key])
    row = Cluster.objects.create(
        name="b",
        api_server=os.environ["LEASEHOLD_K8S_B_SERVER"],
        auth="token",
        credentials_path=str(mounted / "token"),
        environments=["dev"],
    )
    row.full_clean()
    yield row
    cluster.reset_clients()


@pytest.fixture
def namespace_on_b(admin_b, unique_name):
    name = f"onboard-{unique_name}"
    yield name
    try:
        client.CoreV1Api(admin_b).delete_namespace(name)
    except ApiException as exc:
        assert exc.status == 404


def test_the_token_controller_signs_a_token_for_the_service_account_with_bs_ca(onboarded_secret):
    assert onboarded_secret["namespace"] == b"leasehold"
    with open(os.environ["LEASEHOLD_K8S_B_CA_FILE"], "rb") as ca:
        assert onboarded_secret["ca.crt"].strip() == ca.read().strip()


def test_with_the_onboarded_token_leasehold_provisions_on_b_and_nowhere_else(
    cluster_b, admin_b, core, namespace_on_b, settings
):
    settings.LEASEHOLD_BACKUP_NAMESPACE = settings.LEASEHOLD_BACKUP_PVC = "leasehold-backups"  # deploy/base's
    labels = {"app.kubernetes.io/managed-by": "leasehold", "leasehold-test": "onboarding"}
    with cluster.using(cluster_b):
        cluster.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace_on_b, "labels": labels}})
        cluster.apply(
            {
                "apiVersion": "v1",
                "kind": "ResourceQuota",
                "metadata": {"name": "leasehold", "namespace": namespace_on_b},
                "spec": {"hard": {"requests.cpu": "2", "requests.memory": "4Gi"}},
            }
        )
        # The reclaim pass's backup check reads the namespace and the claim that onboarding made.
        assert backup.backup_storage_problem() == ""
        cluster.ping()  # the health check's GET /readyz: open to every authenticated caller
        # The optional node reader: B has no kubelets, so no nodes, but the list is allowed.
        assert cluster._request("GET", "/api/v1/nodes")["items"] == []
    core_b = client.CoreV1Api(admin_b)
    assert core_b.read_namespace(namespace_on_b).metadata.labels.items() >= labels.items()
    quota = core_b.read_namespaced_resource_quota("leasehold", namespace_on_b)
    assert quota.spec.hard == {"requests.cpu": "2", "requests.memory": "4Gi"}
    with pytest.raises(ApiException) as absent:
        core.read_namespace(namespace_on_b)  # cluster A: untouched
    assert absent.value.status == 404


def refused(call) -> bool:
    with pytest.raises(PermanentClusterError) as exc:
        call()
    return exc.value.status == 403


def test_what_lies_outside_the_role_is_refused_on_b(cluster_b):
    cluster_role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": "leasehold-escalate"},
        "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}],
    }
    with cluster.using(cluster_b):
        assert refused(lambda: cluster._request("GET", "/api/v1/namespaces/kube-system/secrets"))
        assert refused(lambda: cluster._request("GET", "/api/v1/secrets"))
        assert refused(lambda: cluster._request("GET", "/api/v1/namespaces"))
        assert refused(lambda: cluster.apply(cluster_role))
        assert refused(lambda: cluster.read(cluster.ObjectRef("v1", "ConfigMap", "kube-system", "kube-root-ca.crt")))
        assert refused(lambda: cluster.apply({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "any"}}))
        assert refused(
            lambda: cluster.apply(
                {
                    "apiVersion": "rbac.authorization.k8s.io/v1",
                    "kind": "ClusterRoleBinding",
                    "metadata": {"name": "leasehold-escalate"},
                    "roleRef": {
                        "apiGroup": "rbac.authorization.k8s.io",
                        "kind": "ClusterRole",
                        "name": "cluster-admin",
                    },
                    "subjects": [{"kind": "ServiceAccount", "name": "leasehold", "namespace": "leasehold"}],
                }
            )
        )


def test_the_token_of_b_is_refused_by_cluster_a(cluster_b, tmp_path):
    """The same token, with A's server and CA: A does not know B's ServiceAccounts (401, not 403)."""
    (tmp_path / "a").mkdir()
    shutil.copy(os.environ["LEASEHOLD_K8S_CA_FILE"], tmp_path / "a" / "ca.crt")
    shutil.copy(cluster_b.credentials_path, tmp_path / "a" / "token")
    wrong = cluster.Target(
        name="b-on-a",
        auth="token",
        api_server=os.environ["LEASEHOLD_K8S_SERVER"],
        credentials_path=str(tmp_path / "a" / "token"),
    )
    with cluster.using(wrong), pytest.raises(PermanentClusterError) as exc:
        cluster.read(cluster.ObjectRef("v1", "Namespace", "", "default"))
    assert exc.value.status == 401
