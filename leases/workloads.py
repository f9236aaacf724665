"""Quarantine: the workloads of a resource in grace are scaled to zero, and restored on extension."""

from __future__ import annotations

from provisioning import cluster
from provisioning.models import ManagedObject
from requests_app.models import Resource

QUARANTINE_MANAGER = "leasehold-quarantine"
WORKLOAD_KINDS = ("Deployment", "StatefulSet")


def _key(obj: ManagedObject) -> str:
    return f"{obj.api_version}/{obj.kind}/{obj.namespace}/{obj.name}"


def workloads_of(resource: Resource) -> list[ManagedObject]:
    """The Deployments and StatefulSets recorded for the resource itself.

    Databases and apps in a namespace have leases of their own that end no later than the namespace's,
    so they are quarantined (and restored) through those; counting them here too would remember the
    zero that their own quarantine left.
    """
    return list(
        ManagedObject.objects.filter(resource=resource, kind__in=WORKLOAD_KINDS, deleted_at__isnull=True).order_by("pk")
    )


def _scale(obj: ManagedObject, replicas: int) -> None:
    cluster.apply(
        {
            "apiVersion": obj.api_version,
            "kind": obj.kind,
            "metadata": {"name": obj.name, "namespace": obj.namespace},
            "spec": {"replicas": replicas},
        },
        field_manager=QUARANTINE_MANAGER,
    )


def quarantine(resource: Resource, remembered: dict[str, int]) -> dict[str, int]:
    """Scale every workload to zero; returns the replica counts to restore (merged with `remembered`,
    so a second pass after a partial failure never records zero as the count to restore)."""
    counts = dict(remembered)
    for obj in workloads_of(resource):
        key = _key(obj)
        live = cluster.read(cluster.ObjectRef(obj.api_version, obj.kind, obj.namespace, obj.name))
        if live is None:
            continue
        replicas = (live.get("spec") or {}).get("replicas", 1)
        if key not in counts:
            counts[key] = replicas
        if replicas != 0:
            _scale(obj, 0)
    return counts


def restore(resource: Resource, counts: dict[str, int]) -> list[str]:
    """Scale the workloads back to what they ran before quarantine; returns what was restored."""
    restored = []
    for obj in workloads_of(resource):
        key = _key(obj)
        if key in counts and cluster.read(cluster.ObjectRef(obj.api_version, obj.kind, obj.namespace, obj.name)):
            _scale(obj, counts[key])
            restored.append(f"{obj.kind} {obj.namespace}/{obj.name}: {counts[key]} replica(s)")
    return restored
