"""platform/rbac: the ClusterRole grants exactly what provisioning/cluster.py addresses (KNOWN_KINDS), with
the verbs the service uses and nothing broader; the optional node reader only lists nodes; and
remote-cluster/ renders the same role, the node reader, a namespace and a token Secret for the same
ServiceAccount (no services needed; the real API server's verdicts are in
tests/provisioning/test_least_privilege.py and test_remote_cluster_rbac.py)."""

from __future__ import annotations

import yaml

from provisioning.cluster import KNOWN_KINDS
from tests.deploy.conftest import ROOT, kustomize

RBAC = ROOT / "platform" / "rbac"
# Server-side apply is a PATCH (and a `create` when the object is new); reads are by name; teardown and
# reclamation delete. Never list, watch, update, deletecollection, escalate or impersonate.
WRITES = {"get", "create", "patch", "delete"}
# Read only: the reclaim pass checks that LEASEHOLD_BACKUP_PVC exists (leases/backup.py); deploy/ (or
# `manage.py ensure_backup_storage`, as the cluster's admin) makes it.
READ_ONLY = {("v1", "PersistentVolumeClaim")}
BIND_EDIT = {
    "apiGroups": ["rbac.authorization.k8s.io"],
    "resources": ["clusterroles"],
    "verbs": ["bind"],
    "resourceNames": ["edit"],
}


def documents(path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def one(objects: list[dict], kind: str) -> dict:
    matches = [o for o in objects if o["kind"] == kind]
    assert len(matches) == 1, f"{len(matches)} {kind}"
    return matches[0]


def grants(rules: list[dict]) -> dict[tuple[str, str], set[str]]:
    """(API group, resource) -> verbs, failing on anything that is not a plain resource rule."""
    granted: dict[tuple[str, str], set[str]] = {}
    for rule in rules:
        assert not rule.get("nonResourceURLs"), rule
        for field in ("apiGroups", "resources", "verbs"):
            assert rule[field] and "*" not in rule[field], rule
        assert not any("/" in r for r in rule["resources"]), f"a subresource: {rule}"
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                assert (group, resource) not in granted, f"{group}/{resource} granted twice"
                granted[(group, resource)] = set(rule["verbs"])
    return granted


def test_the_cluster_role_grants_exactly_the_known_kinds_and_nothing_broader():
    role = one(documents(RBAC / "leasehold" / "leasehold.yaml"), "ClusterRole")
    binds = [r for r in role["rules"] if r.get("resourceNames")]
    assert binds == [BIND_EDIT], "only `bind` on the ClusterRole edit may name objects"
    granted = grants([r for r in role["rules"] if not r.get("resourceNames")])
    expected = {
        (api_version.rpartition("/")[0], plural): {"get"} if (api_version, kind) in READ_ONLY else WRITES
        for (api_version, kind), (plural, _) in KNOWN_KINDS.items()
    }
    assert granted == expected


def test_every_rule_is_cluster_wide_but_for_the_service_account_only():
    objects = documents(RBAC / "leasehold" / "leasehold.yaml")
    assert sorted(o["kind"] for o in objects) == ["ClusterRole", "ClusterRoleBinding", "ServiceAccount"]
    account = one(objects, "ServiceAccount")["metadata"]
    binding = one(objects, "ClusterRoleBinding")
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "leasehold"}
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": account["name"], "namespace": account["namespace"]}
    ]


def test_the_node_reader_only_lists_nodes_for_the_same_service_account():
    objects = documents(RBAC / "node-reader" / "node-reader.yaml")
    role = one(objects, "ClusterRole")
    assert role["metadata"]["name"] == "leasehold-node-reader"
    assert grants(role["rules"]) == {("", "nodes"): {"list"}}
    binding = one(objects, "ClusterRoleBinding")
    assert binding["roleRef"]["name"] == "leasehold-node-reader"
    account = one(documents(RBAC / "leasehold" / "leasehold.yaml"), "ServiceAccount")["metadata"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": account["name"], "namespace": "leasehold"}]


def test_the_remote_cluster_kustomization_is_the_same_role_plus_a_namespace_and_a_token():
    rendered = kustomize(RBAC / "remote-cluster")
    shared = documents(RBAC / "leasehold" / "leasehold.yaml") + documents(RBAC / "node-reader" / "node-reader.yaml")
    key = lambda o: (o["kind"], o["metadata"]["name"])  # noqa: E731
    assert sorted(map(key, rendered)) == sorted(
        [*map(key, shared), ("Namespace", "leasehold"), ("Secret", "leasehold-token")]
    )
    for obj in shared:  # exactly as the cluster Leasehold runs in has them
        assert next(o for o in rendered if key(o) == key(obj)) == obj
    account = one(rendered, "ServiceAccount")["metadata"]
    token = one(rendered, "Secret")
    assert token["type"] == "kubernetes.io/service-account-token"
    assert token["metadata"]["namespace"] == account["namespace"] == one(rendered, "Namespace")["metadata"]["name"]
    assert token["metadata"]["annotations"] == {"kubernetes.io/service-account.name": account["name"]}
    assert "data" not in token and "stringData" not in token  # the cluster's token controller fills it


def test_the_cluster_leasehold_runs_in_gets_the_role_without_a_token_secret():
    assert sorted(o["kind"] for o in kustomize(RBAC)) == ["ClusterRole", "ClusterRoleBinding", "ServiceAccount"]
