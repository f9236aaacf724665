"""Every overlay, applied to the real API server that `make test` starts, with server-side dry-run.

The local API server is Kubernetes 1.20: it serves CronJob only as batch/v1beta1 and
PodDisruptionBudget only as policy/v1beta1, while deploy/ is written for today's clusters (batch/v1 and
policy/v1, the only versions from 1.25 on). Objects of a kind the server serves as written are
dry-run as they are; those two kinds are dry-run in the beta group the server has (their fields used
here are the same in both), and test_manifests.py validates them as written against the schemas of
1.25 and the newest release. Nothing is written: dryRun=All; only the two namespaces are created (as
tests/provisioning/test_least_privilege.py does), because a dry-run needs its namespace to exist.
"""

from __future__ import annotations

import copy

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import ResourceNotFoundError

from tests.conftest import require_env
from tests.deploy.conftest import OVERLAYS

# Today's version of a kind -> the version the 1.20 API server serves it in.
OLDER_VERSIONS = {("batch/v1", "CronJob"): "batch/v1beta1", ("policy/v1", "PodDisruptionBudget"): "policy/v1beta1"}


@pytest.fixture(scope="module")
def dynamic(kube_api):
    require_env("KUBECONFIG")
    return DynamicClient(kube_api)


def served(dynamic, obj: dict):
    try:
        return dynamic.resources.get(api_version=obj["apiVersion"], kind=obj["kind"])
    except ResourceNotFoundError:
        return None


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_api_server_accepts_every_object_with_a_server_side_dry_run(rendered, dynamic, kube_api, overlay):
    objects = rendered[overlay]
    core = client.CoreV1Api(kube_api)
    for namespace in [o for o in objects if o["kind"] == "Namespace"]:
        try:
            core.create_namespace({"metadata": {"name": namespace["metadata"]["name"]}})
        except ApiException as exc:
            assert exc.status == 409
    as_written, converted = [], []
    for obj in objects:
        resource = served(dynamic, obj)
        if resource is None:
            older = OLDER_VERSIONS.get((obj["apiVersion"], obj["kind"]))
            assert older, f"the API server serves no {obj['apiVersion']} {obj['kind']}"
            obj = {**copy.deepcopy(obj), "apiVersion": older}
            resource = served(dynamic, obj)
            converted.append(obj["kind"])
        else:
            as_written.append(obj["kind"])
        meta = obj["metadata"]
        try:
            answer = resource.server_side_apply(
                body=obj,
                name=meta["name"],
                namespace=meta.get("namespace"),
                field_manager="leasehold-deploy-test",
                dry_run="All",
            )
        except ApiException as exc:
            pytest.fail(f"{obj['apiVersion']} {obj['kind']} {meta['name']} refused: {exc.status} {exc.body}")
        assert answer.metadata.name == meta["name"]
    # Everything else, as written; only these two kinds needed their beta versions here.
    assert sorted(converted) == ["CronJob", "PodDisruptionBudget"]
    assert {"Deployment", "Job", "Ingress", "NetworkPolicy", "ClusterRole", "ConfigMap"} <= set(as_written)
