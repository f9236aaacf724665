"""Quarantine: the workloads of a resource in grace are scaled to zero, and restored on extension."""

from __future__ import annotations

from provisioning import cluster
from provisioning.kinds import PROVISIONING_KINDS
from provisioning.models import ManagedObject
from requests_app.models import Resource
from requests_app.names import count_of

QUARANTINE_MANAGER = "leasehold-quarantine"


def _key(obj: ManagedObject) -> str:
    return f"{obj.api_version}/{obj.kind}/{obj.namespace}/{obj.name}"


def workloads_of(resource: Resource) -> list[ManagedObject]:
    """The workloads (what its kind's quarantine scales: Deployments, StatefulSets) recorded for the
    resource itself.

    Databases and apps in a namespace have leases of their own that end no later than the namespace's,
    so they are quarantined (and restored) through those; counting them here too would remember the
    zero that their own quarantine left.
    """
    return list(
        ManagedObject.objects.filter(
            resource=resource, kind__in=PROVISIONING_KINDS.get(resource.kind).workloads, deleted_at__isnull=True
        ).order_by("pk")
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


def replica_counts(resource: Resource, remembered: dict[str, int]) -> dict[str, int]:
    """The replica counts to restore after quarantine: what runs now, merged with `remembered`, so that a
    pass after a partial failure never records the zero that the failed pass left as the count."""
    counts = dict(remembered)
    for obj in workloads_of(resource):
        key = _key(obj)
        if key in counts:
            continue
        live = cluster.read(cluster.ObjectRef(obj.api_version, obj.kind, obj.namespace, obj.name))
        if live is not None:
            counts[key] = (live.get("spec") or {}).get("replicas", 1)
    return counts


def scale_to_zero(resource: Resource) -> int:
    """Scale every workload of the resource to zero (idempotent); returns how many there are."""
    objects = workloads_of(resource)
    for obj in objects:
        live = cluster.read(cluster.ObjectRef(obj.api_version, obj.kind, obj.namespace, obj.name))
        if live is not None and (live.get("spec") or {}).get("replicas", 1) != 0:
            _scale(obj, 0)
    return len(objects)


def restore(resource: Resource, counts: dict[str, int]) -> list[str]:
    """Scale the workloads back to what they ran before quarantine; returns what was restored."""
    restored = []
    for obj in workloads_of(resource):
        key = _key(obj)
        if key in counts and cluster.read(cluster.ObjectRef(obj.api_version, obj.kind, obj.namespace, obj.name)):
            _scale(obj, counts[key])
            restored.append(f"{obj.kind} {obj.namespace}/{obj.name}: {count_of(counts[key], 'replica')}")
    return restored
