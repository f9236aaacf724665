"""Pure functions: a request's spec in, the Kubernetes manifests (dicts) out.

Only APIs that are valid on Kubernetes 1.20 and on current clusters are used (core v1, rbac v1,
networking.k8s.io/v1). Every object carries the labels and annotations of CONTRACT.md §5.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from kubernetes.utils import parse_quantity

from requests_app.models import Kind
from requests_app.specs import Quota, namespace_quota

MANAGED_BY = "leasehold"
LABEL_RESOURCE = "leasehold.io/resource"
LABEL_TEAM = "leasehold.io/team"
LABEL_ENVIRONMENT = "leasehold.io/environment"
ANNOTATION_REQUEST = "leasehold.io/request"
ANNOTATION_OWNER = "leasehold.io/owner"
ANNOTATION_LEASE_EXPIRES = "leasehold.io/lease-expires"
OBJECT_NAME = "leasehold"

# Container defaults inside a namespace, so that pods without resources still pass the quota.
DEFAULT_REQUEST = {"cpu": "100m", "memory": "128Mi"}
DEFAULT_LIMIT = {"cpu": "500m", "memory": "512Mi"}


@dataclass(frozen=True)
class RenderContext:
    """Who and what the objects belong to: the values of the contract's labels and annotations."""

    resource_id: str
    request_id: str
    team: str
    team_group: str
    environment: str
    owner: str
    lease_expires: datetime


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def object_metadata(ctx: RenderContext, name: str, namespace: str | None = None) -> dict:
    meta: dict = {
        "name": name,
        "labels": {
            "app.kubernetes.io/managed-by": MANAGED_BY,
            LABEL_RESOURCE: ctx.resource_id,
            LABEL_TEAM: ctx.team,
            LABEL_ENVIRONMENT: ctx.environment,
        },
        "annotations": {
            ANNOTATION_REQUEST: ctx.request_id,
            ANNOTATION_OWNER: ctx.owner,
            ANNOTATION_LEASE_EXPIRES: rfc3339(ctx.lease_expires),
        },
    }
    if namespace is not None:
        meta["namespace"] = namespace
    return meta


def _at_most(value: str, ceiling: str) -> str:
    return value if parse_quantity(value) <= parse_quantity(ceiling) else ceiling


def _smaller(a: str, b: str) -> str:
    qa: Decimal = parse_quantity(a)
    return a if qa <= parse_quantity(b) else b


def namespace_manifests(*, namespace: str, quota: Quota, ctx: RenderContext) -> list[dict]:
    """Namespace, ResourceQuota, LimitRange, RoleBinding and NetworkPolicy for one team namespace."""
    limit = {k: _at_most(v, getattr(quota, k)) for k, v in DEFAULT_LIMIT.items()}
    request = {k: _smaller(v, limit[k]) for k, v in DEFAULT_REQUEST.items()}
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": object_metadata(ctx, namespace)},
        {
            "apiVersion": "v1",
            "kind": "ResourceQuota",
            "metadata": object_metadata(ctx, OBJECT_NAME, namespace),
            "spec": {
                "hard": {
                    "requests.cpu": quota.cpu,
                    "limits.cpu": quota.cpu,
                    "requests.memory": quota.memory,
                    "limits.memory": quota.memory,
                    "requests.storage": quota.storage,
                }
            },
        },
        {
            "apiVersion": "v1",
            "kind": "LimitRange",
            "metadata": object_metadata(ctx, OBJECT_NAME, namespace),
            "spec": {"limits": [{"type": "Container", "default": limit, "defaultRequest": request}]},
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": object_metadata(ctx, "leasehold-team", namespace),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": ctx.team_group}],
        },
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": object_metadata(ctx, "leasehold-default", namespace),
            "spec": {
                "podSelector": {},
                "policyTypes": ["Ingress"],
                # Only pods of the same namespace may connect; everything else is denied.
                "ingress": [{"from": [{"podSelector": {}}]}],
            },
        },
    ]


def manifests_for(*, kind: str, team: str, name: str, spec: dict, ctx: RenderContext) -> list[dict]:
    """The manifests a create request of `kind` applies, in apply order."""
    if kind == Kind.NAMESPACE:
        return namespace_manifests(namespace=f"{team}-{name}", quota=namespace_quota(spec), ctx=ctx)
    raise ValueError(f"no renderer for kind {kind!r}")
