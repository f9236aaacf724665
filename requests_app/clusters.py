"""Clusters as data: the default cluster from today's settings, what each cluster has committed, where a
namespace request is placed, and what its capacity admits. provisioning/cluster.py connects to each."""

from __future__ import annotations

import os
from collections.abc import Iterable
from decimal import Decimal
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import models

from . import specs
from .errors import ValidationFailed
from .models import (
    DEFAULT_CLUSTER,
    Action,
    Cluster,
    ClusterAuth,
    Environment,
    Kind,
    RequestState,
    Resource,
    ResourceRequest,
    ResourceState,
)

# What a namespace counts against (a team's budget, a cluster's capacity) from filing until it is reclaimed:
# live namespace resources, and the create requests that will become ones.
LIVE_RESOURCE_STATES = (
    ResourceState.PROVISIONING,
    ResourceState.ACTIVE,
    ResourceState.GRACE,
    ResourceState.RECLAIMING,
)
UNPROVISIONED_STATES = (RequestState.PENDING_APPROVAL, RequestState.APPROVED)
QUANTITIES = ("cpu", "memory", "storage")


def default_cluster_fields() -> dict[str, Any]:
    """The default cluster as today's settings describe it (LEASEHOLD_CLUSTER, resolved as
    provisioning/cluster.py resolves it): it serves every environment."""
    mode = settings.LEASEHOLD_CLUSTER
    if mode == "auto":
        if os.environ.get("KUBERNETES_SERVICE_HOST"):
            mode = "incluster"
        elif os.environ.get("KUBECONFIG") or Path("~/.kube/config").expanduser().exists():
            mode = "kubeconfig"
        else:
            mode = "local"
    fields: dict[str, Any] = {"environments": list(Environment.values), "auth": ClusterAuth.IN_CLUSTER}
    if mode == "kubeconfig":
        path = os.environ.get("KUBECONFIG") or str(Path("~/.kube/config").expanduser())
        fields.update(auth=ClusterAuth.KUBECONFIG, credentials_path=str(Path(path).absolute()))
    elif mode == "local":
        fields.update(auth=ClusterAuth.KUBECONFIG, credentials_path=str(Path(settings.LEASEHOLD_LOCAL_KUBECONFIG)))
    return fields


def namespace_usage(spec: Any, parsed: dict[Any, specs.Usage]) -> specs.Usage:
    """specs.quota_usage of a namespace's spec, parsed once per distinct spec (`parsed` keeps them)."""
    try:
        key = frozenset(spec.items())
    except (AttributeError, TypeError):  # not a flat mapping of plain values: parsed each time
        return specs.quota_usage(specs.namespace_quota(spec))
    if key not in parsed:
        parsed[key] = specs.quota_usage(specs.namespace_quota(spec))
    return parsed[key]


def namespace_totals(by: str, ids: Iterable[Any]) -> tuple[dict[Any, specs.Usage], dict[Any, int]]:
    """The quota and the count of the namespaces that hold budget or capacity, grouped by `by` ("team_id"
    or "cluster_id") for the given ids, in two queries. Counted per distinct spec (most namespaces take one
    of a few plans): the database groups the rows, and each spec is parsed once."""
    keys = list(ids)
    used = {pk: specs.Usage() for pk in keys}
    count = dict.fromkeys(keys, 0)
    field = by.removesuffix("_id")
    live = Resource.objects.filter(**{f"{field}__in": keys}, kind=Kind.NAMESPACE, state__in=LIVE_RESOURCE_STATES)
    waiting = ResourceRequest.objects.filter(
        **{f"{field}__in": keys}, kind=Kind.NAMESPACE, action=Action.CREATE, state__in=UNPROVISIONED_STATES
    )
    parsed: dict[Any, specs.Usage] = {}
    for queryset in (live, waiting):
        for row in queryset.order_by().values(by, "spec").annotate(n=models.Count("pk")):
            usage, n = namespace_usage(row["spec"], parsed), row["n"]
            used[row[by]] += specs.Usage(usage.cpu * n, usage.memory * n, usage.storage * n)
            count[row[by]] += n
    return used, count


def clusters_committed(clusters: Iterable[Cluster]) -> dict[int, specs.Usage]:
    """The namespace quota committed on each cluster (live namespaces and those on their way), as a team's
    budget counts it."""
    return namespace_totals("cluster_id", [c.pk for c in clusters])[0]


def cluster_left(cluster: Cluster, committed: specs.Usage) -> dict[str, Decimal | None]:
    """What the cluster still admits: capacity − committed per quantity (None: no limit)."""
    capacity = cluster.capacity()
    return {k: None if capacity[k] is None else capacity[k] - getattr(committed, k) for k in QUANTITIES}


def shortfall(asked: specs.Usage, left: dict[str, Decimal | None]) -> list[str]:
    """ "cpu 4 asked, 2 left" for each quantity asked beyond what is left (None left: no limit)."""
    out = []
    for key in QUANTITIES:
        need, have = getattr(asked, key), left[key]
        if have is not None and need > have:
            out.append(
                f"{key} {specs.format_quantity(need, key)} asked, "
                f"{specs.format_quantity(max(have, Decimal(0)), key)} left"
            )
    return out


def _load(cluster: Cluster, committed: specs.Usage) -> Decimal:
    """The largest share of its capacity a cluster has committed (0 when no capacity is set)."""
    capacity = cluster.capacity()
    shares = [getattr(committed, k) / capacity[k] for k in QUANTITIES if capacity[k]]
    return max(shares, default=Decimal(0))


def place(*, environment: str, asked: specs.Usage, name: str | None) -> Cluster:
    """The cluster a namespace request goes to: the one named (it must exist, serve the environment and
    take new requests), or among those that do, the least committed one it fits on. Raises
    ValidationFailed with a `cluster` message, or a `spec` one when it fits on none (what is left)."""
    if name:
        cluster = Cluster.objects.filter(name=name).first()
        if cluster is None:
            raise ValidationFailed({"cluster": [f"No cluster named {specs.describe(name)}."]})
        if environment not in cluster.environments:
            raise ValidationFailed({"cluster": [f"Cluster {cluster.name} does not serve {environment}."]})
        if not cluster.accepting:
            raise ValidationFailed({"cluster": [f"Cluster {cluster.name} does not take new requests."]})
        candidates = [cluster]
    else:
        if not Cluster.objects.exists():
            Cluster.objects.get_or_create(name=DEFAULT_CLUSTER, defaults=default_cluster_fields())
        candidates = [c for c in Cluster.objects.filter(accepting=True) if environment in c.environments]
        if not candidates:
            raise ValidationFailed({"cluster": [f"No cluster takes new {environment} requests."]})
    committed = clusters_committed(candidates)
    candidates.sort(key=lambda c: (_load(c, committed[c.pk]), c.name))
    for cluster in candidates:
        if not shortfall(asked, cluster_left(cluster, committed[cluster.pk])):
            return cluster
    best = candidates[0]
    short = shortfall(asked, cluster_left(best, committed[best.pk]))
    raise ValidationFailed({"spec": [f"Over cluster {best.name}'s capacity: {'; '.join(short)}."]})
