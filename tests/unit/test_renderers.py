from datetime import UTC, datetime

import kubernetes_validate
import pytest

from provisioning.renderers import RenderContext, namespace_manifests, pod_security_labels, pod_security_labels_of
from requests_app.specs import NAMESPACE_PLANS, Quota

CTX = RenderContext(
    resource_id="0b5f3c1e-9a43-4c36-9b7b-6c2f1f0d9a11",
    request_id="5d1b2c3e-1111-4c36-9b7b-6c2f1f0d9a22",
    team="atlas",
    team_group="team-atlas",
    environment="dev",
    owner="dana",
    lease_expires=datetime(2026, 12, 6, 14, 30, 5, 123456, tzinfo=UTC),
)


def manifests(quota=NAMESPACE_PLANS["small"]):
    return namespace_manifests(namespace="atlas-checkout", quota=quota, ctx=CTX)


def test_a_namespace_request_renders_the_five_contract_objects():
    got = [(m["kind"], m["metadata"]["name"], m["metadata"].get("namespace")) for m in manifests()]
    assert got == [
        ("Namespace", "atlas-checkout", None),
        ("ResourceQuota", "leasehold", "atlas-checkout"),
        ("LimitRange", "leasehold", "atlas-checkout"),
        ("RoleBinding", "leasehold-team", "atlas-checkout"),
        ("NetworkPolicy", "leasehold-default", "atlas-checkout"),
    ]


CONTRACT_LABELS = {
    "app.kubernetes.io/managed-by": "leasehold",
    "leasehold.io/resource": CTX.resource_id,
    "leasehold.io/team": "atlas",
    "leasehold.io/environment": "dev",
}
RESTRICTED_LATEST = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/enforce-version": "latest",
    "pod-security.kubernetes.io/audit": "restricted",
    "pod-security.kubernetes.io/audit-version": "latest",
    "pod-security.kubernetes.io/warn": "restricted",
    "pod-security.kubernetes.io/warn-version": "latest",
}


def test_every_object_carries_the_contract_labels_and_annotations():
    for m in manifests():
        extra = RESTRICTED_LATEST if m["kind"] == "Namespace" else {}
        assert m["metadata"]["labels"] == {**CONTRACT_LABELS, **extra}
        assert m["metadata"]["annotations"] == {
            "leasehold.io/request": CTX.request_id,
            "leasehold.io/owner": "dana",
            "leasehold.io/lease-expires": "2026-12-06T14:30:05Z",
        }


def test_the_quota_holds_the_plan_values():
    quota = next(m for m in manifests(NAMESPACE_PLANS["medium"]) if m["kind"] == "ResourceQuota")
    assert quota["spec"]["hard"] == {
        "requests.cpu": "4",
        "limits.cpu": "4",
        "requests.memory": "8Gi",
        "limits.memory": "8Gi",
        "requests.storage": "50Gi",
    }


def test_limit_defaults_never_exceed_a_tiny_quota():
    limits = next(m for m in manifests(Quota("200m", "256Mi", "1Gi")) if m["kind"] == "LimitRange")
    container = limits["spec"]["limits"][0]
    assert container["default"] == {"cpu": "200m", "memory": "256Mi"}
    assert container["defaultRequest"] == {"cpu": "100m", "memory": "128Mi"}


def test_the_team_group_gets_edit_and_only_its_namespace_may_connect():
    by_kind = {m["kind"]: m for m in manifests()}
    assert by_kind["RoleBinding"]["roleRef"]["name"] == "edit"
    assert by_kind["RoleBinding"]["subjects"] == [
        {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "team-atlas"}
    ]
    assert by_kind["NetworkPolicy"]["spec"]["ingress"] == [
        {"from": [{"podSelector": {}}, {"namespaceSelector": {"matchLabels": {"leasehold.io/backups": "true"}}}]}
    ]


def test_the_namespace_enforces_audits_and_warns_about_the_restricted_level_by_default():
    namespace = manifests()[0]
    assert namespace["kind"] == "Namespace"
    assert {k: v for k, v in namespace["metadata"]["labels"].items() if "pod-security" in k} == RESTRICTED_LATEST


@pytest.mark.parametrize("level", ["privileged", "baseline", "restricted"])
def test_the_namespace_carries_the_level_and_version_it_is_given(level):
    (namespace, *_) = namespace_manifests(
        namespace="atlas-checkout",
        quota=NAMESPACE_PLANS["small"],
        ctx=CTX,
        pod_security=level,
        pod_security_version="v1.30",
    )
    for mode in ("enforce", "audit", "warn"):
        assert namespace["metadata"]["labels"][f"pod-security.kubernetes.io/{mode}"] == level
        assert namespace["metadata"]["labels"][f"pod-security.kubernetes.io/{mode}-version"] == "v1.30"
    assert pod_security_labels_of(namespace) == pod_security_labels(level, "v1.30")


def test_an_unknown_pod_security_level_is_refused():
    with pytest.raises(ValueError, match="unknown Pod Security level"):
        namespace_manifests(namespace="atlas-checkout", quota=NAMESPACE_PLANS["small"], ctx=CTX, pod_security="open")


def test_only_the_namespace_carries_pod_security_labels():
    assert [m["kind"] for m in manifests() if pod_security_labels_of(m)] == ["Namespace"]


@pytest.mark.parametrize("version", ["1.33.0", kubernetes_validate.latest_version()])
@pytest.mark.parametrize("level", ["baseline", "restricted"])
def test_manifests_validate_strictly_against_current_schemas(version, level):
    objects = namespace_manifests(
        namespace="atlas-checkout", quota=NAMESPACE_PLANS["small"], ctx=CTX, pod_security=level
    )
    for m in objects:
        kubernetes_validate.validate(m, version, strict=True)
