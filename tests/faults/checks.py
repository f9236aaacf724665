"""Assertions shared by the fault tests."""

from __future__ import annotations

from kubernetes import client

from provisioning.models import ManagedObject
from requests_app.models import AuditEvent, ResourceRequest


def audit_count(verb: str, **filters) -> int:
    return AuditEvent.objects.filter(verb=verb, **filters).count()


def assert_recorded_objects_match_the_cluster(request: ResourceRequest, api_client) -> None:
    """Every recorded object exists once, with the uid we recorded and our label; nothing else is ours."""
    resource_id = str(request.resource_id)
    rows = list(ManagedObject.objects.filter(resource_id=resource_id, deleted_at__isnull=True))
    assert len(rows) == 5, rows
    core = client.CoreV1Api(api_client)
    net = client.NetworkingV1Api(api_client)
    rbac = client.RbacAuthorizationV1Api(api_client)
    ns_name = f"atlas-{request.name}"
    selector = f"leasehold.io/resource={resource_id}"
    live = {("Namespace", "", ns_name): core.read_namespace(ns_name).metadata.uid}
    for kind, listing in (
        ("ResourceQuota", core.list_namespaced_resource_quota(ns_name, label_selector=selector)),
        ("LimitRange", core.list_namespaced_limit_range(ns_name, label_selector=selector)),
        ("NetworkPolicy", net.list_namespaced_network_policy(ns_name, label_selector=selector)),
        ("RoleBinding", rbac.list_namespaced_role_binding(ns_name, label_selector=selector)),
    ):
        assert len(listing.items) == 1, (kind, [i.metadata.name for i in listing.items])
        live[(kind, ns_name, listing.items[0].metadata.name)] = listing.items[0].metadata.uid
    assert {(r.kind, r.namespace, r.name): r.uid for r in rows} == live
    assert all(r.applied_at is not None for r in rows)
