"""deploy/components/cluster-credentials, added to each overlay as README "Onboarding a cluster" says: the
cluster's Secret is mounted read-only, as a whole volume, where its registration points, into exactly the
pods that call clusters; everything else renders as without it, and stays valid."""

from __future__ import annotations

import os

import kubernetes_validate
import pytest

from tests.deploy.conftest import OVERLAYS, ROOT, kustomize
from tests.deploy.test_manifests import containers, pod_templates

COMPONENT = ROOT / "deploy" / "components" / "cluster-credentials"
MOUNT = "/var/run/leasehold/clusters/prod-b"
CALLERS = {"Deployment/leasehold-web", "Deployment/leasehold-worker", "CronJob/leasehold-reclaim"}


@pytest.fixture(scope="module")
def with_component(tmp_path_factory) -> dict[str, list[dict]]:
    """Each overlay with the component, rendered from an overlay of its own (as an operator's would be)."""
    rendered = {}
    for overlay in OVERLAYS:
        mine = tmp_path_factory.mktemp(f"{overlay}-with-cluster")
        (mine / "kustomization.yaml").write_text(
            f"resources:\n  - {os.path.relpath(ROOT / 'deploy' / 'overlays' / overlay, mine)}\n"
            f"components:\n  - {os.path.relpath(COMPONENT, mine)}\n"
        )
        rendered[overlay] = kustomize(mine)
    return rendered


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_cluster_secret_is_mounted_read_only_into_the_pods_that_call_clusters(with_component, overlay):
    templates = dict(pod_templates(with_component[overlay]))
    assert set(templates) > CALLERS
    for where, pod in templates.items():
        volumes = [v for v in pod["volumes"] if v["name"] == "cluster-prod-b"]
        mounts = [(c["name"], m) for c in containers(pod) for m in c["volumeMounts"] if m["name"] == "cluster-prod-b"]
        if where not in CALLERS:  # beat, the migration Job: no credential they do not use
            assert volumes == [] and mounts == [], where
            continue
        assert volumes == [
            {"name": "cluster-prod-b", "secret": {"secretName": "leasehold-cluster-prod-b", "defaultMode": 0o440}}
        ]
        # The main container only, the whole volume (no subPath: a rotated token reaches the file), read-only.
        assert mounts == [
            (pod["containers"][0]["name"], {"name": "cluster-prod-b", "mountPath": MOUNT, "readOnly": True})
        ], where
        assert pod["securityContext"]["fsGroup"] == 10001, where  # 0440 is readable by the pod's user


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_nothing_else_changes_and_deploy_still_holds_no_secret(with_component, rendered, overlay):
    def key(obj):
        return (obj["kind"], obj["metadata"]["name"])

    before = {key(o): o for o in rendered[overlay]}
    after = {key(o): o for o in with_component[overlay]}
    assert set(after) == set(before)
    changed = {f"{k}/{n}" for (k, n), obj in after.items() if obj != before[(k, n)]}
    assert changed == CALLERS
    assert not [o for o in after.values() if o["kind"] == "Secret"]
    for name in CALLERS:
        kind, _, object_name = name.partition("/")
        kubernetes_validate.validate(after[(kind, object_name)], kubernetes_validate.latest_version(), strict=True)


def test_the_example_path_is_what_the_admin_registers():
    # README "Onboarding a cluster": credentials_path = the mount + /token, and the Secret's keys.
    readme = (ROOT / "README.md").read_text()
    assert f"{MOUNT}/token" in readme.replace("<name>", "prod-b")
    assert "leasehold-cluster-prod-b" in (COMPONENT / "kustomization.yaml").read_text()
