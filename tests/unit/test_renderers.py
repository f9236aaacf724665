from datetime import UTC, datetime

import kubernetes_validate
import pytest

from provisioning.renderers import RenderContext, namespace_manifests
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


def test_every_object_carries_the_contract_labels_and_annotations():
    for m in manifests():
        assert m["metadata"]["labels"] == {
            "app.kubernetes.io/managed-by": "leasehold",
            "leasehold.io/resource": CTX.resource_id,
            "leasehold.io/team": "atlas",
            "leasehold.io/environment": "dev",
        }
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


@pytest.mark.parametrize("version", ["1.33.0", kubernetes_validate.latest_version()])
def test_manifests_validate_strictly_against_current_schemas(version):
    for m in manifests():
        kubernetes_validate.validate(m, version, strict=True)
