"""The clusters' health check: is each registered cluster's API server ready, and what do its nodes offer.

`clusters_check()` asks every cluster at once, each in a thread of its own under `cluster.using(it)`, so a
cluster that is down or slow (up to its connect timeout, at most 5 s) delays no other cluster's answer:
one `GET /readyz` (`cluster.ping`) and, when that answered, one `GET /api/v1/nodes` whose allocatable CPU
and memory are summed (where the service may list nodes; a 403 leaves them blank, and admission then
counts on the admin's values only). The threads touch no database. Back in the caller's thread, each
cluster whose state changed gets one UPDATE (the others one shared UPDATE of `health_checked_at`):
`healthy`, `unhealthy_since` (set when it goes down, kept while it stays down, cleared when it answers
again), `health_detail` (the error, scrubbed of anything that looks like a credential, truncated) and
`nodes_cpu` / `nodes_memory`.

A change of state is audited (`cluster_unreachable`, `cluster_recovered`; actor: the system; target: the
cluster) and logged once, not at every check: the UPDATE is a compare-and-set on the state read before
the check, so two checks running at once record a change once. A recovery sends
`provisioning.signals.cluster_recovered` after the commit; the provisioning sweep connects to it to
resume the requests that waited on that cluster.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from requests_app.models import Cluster
from requests_app.quantities import parse_quantity
from requests_app.services import audit_record

from .. import cluster
from ..errors import ClusterError, ClusterNotConfigured, PermanentClusterError
from ..signals import cluster_recovered

log = logging.getLogger(__name__)

DETAIL_MAX = 300  # characters of an error kept in health_detail (the column holds 500)
# Whatever might be a credential in an error's text: an Authorization value, a URL's user:password@, a
# JWT (a ServiceAccount token).
_CREDENTIALS = (
    (re.compile(r"(?i)\b(bearer|basic)\s+[^\s'\"]+"), r"\1 [hidden]"),
    (re.compile(r"://[^/\s@'\"]+@"), "://[hidden]@"),
    (re.compile(r"\beyJ[\w-]+\.[\w-]+\.[\w-]*"), "[hidden]"),
)
_BINARY_UNITS = (("Ti", 1024**4), ("Gi", 1024**3), ("Mi", 1024**2), ("Ki", 1024))


@dataclass(frozen=True)
class Probe:
    """What one look at one cluster found. `nodes`: the summed allocatable (cpu, memory), ("", "") when
    it cannot be read (forbidden, no nodes), None to keep what was stored (the list failed for now)."""

    healthy: bool
    detail: str = ""
    nodes: tuple[str, str] | None = None


@dataclass(frozen=True)
class ClusterHealth:
    """One cluster after a check, as it was recorded. `change`: "unreachable", "recovered" or ""."""

    name: str
    healthy: bool
    detail: str
    unhealthy_since: datetime | None
    nodes_cpu: str
    nodes_memory: str
    change: str = ""


def error_detail(exc: BaseException) -> str:
    """An error as health_detail keeps it: its text, without what looks like a credential, truncated."""
    ours = isinstance(exc, ClusterError | ClusterNotConfigured)  # their messages say what happened
    text = str(exc) if ours else f"{type(exc).__name__}: {exc}"
    for pattern, replacement in _CREDENTIALS:
        text = pattern.sub(replacement, text)
    text = " ".join(text.split())
    return text if len(text) <= DETAIL_MAX else text[: DETAIL_MAX - 1] + "…"


def cpu_text(cores: Decimal) -> str:
    """Cores as a Kubernetes quantity: "12", or "7500m" when not whole."""
    return str(int(cores)) if cores == cores.to_integral_value() else f"{int(cores * 1000)}m"


def memory_text(size: Decimal) -> str:
    """Bytes as a Kubernetes quantity in the largest binary unit that holds them exactly ("64Gi", "16777212Ki")."""
    whole = int(size)
    for unit, factor in _BINARY_UNITS:
        if whole and whole % factor == 0:
            return f"{whole // factor}{unit}"
    return str(whole)


def nodes_allocatable(nodes: Iterable[dict]) -> tuple[str, str]:
    """The nodes' allocatable CPU and memory, summed, as quantities; ("", "") when there are no nodes (a
    control plane with no kubelet has none: that is no figure, not a capacity of zero). A quantity a node
    reports that cannot be read is left out of the sum."""
    cpu, memory, seen = Decimal(0), Decimal(0), False
    for node in nodes:
        allocatable = (node.get("status") or {}).get("allocatable") or {}
        for key in ("cpu", "memory"):
            try:
                value = parse_quantity(allocatable[key])
            except (KeyError, ValueError, TypeError, ArithmeticError):
                continue
            if not value.is_finite() or value < 0:
                continue
            seen = True
            if key == "cpu":
                cpu += value
            else:
                memory += value
    if not seen:
        return ("", "")
    return (cpu_text(cpu) if cpu else "", memory_text(memory) if memory else "")


def cluster_probe(target: cluster.Target) -> Probe:
    """Look at one cluster (in a thread of the check: no database here). Never raises: any failure of
    the readiness call is the cluster being down, with the error as its detail."""
    with cluster.using(target):
        try:
            cluster.ping()
        except Exception as exc:  # noqa: BLE001 - a check records every failure; one cluster's must not stop the rest
            return Probe(healthy=False, detail=error_detail(exc))
        try:
            return Probe(healthy=True, nodes=nodes_allocatable(cluster.list_nodes()))
        except PermanentClusterError:  # 403: the service may not list nodes; admission uses the admin's values
            return Probe(healthy=True, nodes=("", ""))
        except Exception:  # noqa: BLE001 - ready, but the list failed for now: keep the figures, ask again next time
            log.info("cluster %s: could not list its nodes this time", target.name, exc_info=True)
            return Probe(healthy=True)


def clusters_check(*, names: Sequence[str] = ()) -> list[ClusterHealth]:
    """Check every registered cluster (or those named) at once and record what was found. Returns each
    cluster's health, by name."""
    rows = Cluster.objects.order_by("name")
    if names:
        rows = rows.filter(name__in=names)
    clusters = list(rows)
    if not clusters:
        return []
    targets = [cluster.target_of(row) for row in clusters]
    probes = cluster.map_bounded(cluster_probe, targets, limit=len(targets))
    now = timezone.now()
    results, unchanged = [], []
    for row, probe in zip(clusters, probes, strict=True):
        fields = _changed_fields(row, probe, now)
        if fields:
            results.append(_record(row, probe, fields, now))
        else:
            unchanged.append(row.pk)
            results.append(_health(row, change=""))
    if unchanged:
        Cluster.objects.filter(pk__in=unchanged).update(health_checked_at=now)
    return results


def _changed_fields(row: Cluster, probe: Probe, now: datetime) -> dict[str, object]:
    """The health fields that differ from what is stored (health_checked_at aside)."""
    wanted: dict[str, object] = {
        "healthy": probe.healthy,
        "health_detail": probe.detail,
        "unhealthy_since": None if probe.healthy else (row.unhealthy_since if row.healthy is False else now),
    }
    if probe.nodes is not None:
        wanted["nodes_cpu"], wanted["nodes_memory"] = probe.nodes
    return {field: value for field, value in wanted.items() if getattr(row, field) != value}


def _health(row: Cluster, *, change: str) -> ClusterHealth:
    return ClusterHealth(
        name=row.name,
        healthy=bool(row.healthy),
        detail=row.health_detail,
        unhealthy_since=row.unhealthy_since,
        nodes_cpu=row.nodes_cpu,
        nodes_memory=row.nodes_memory,
        change=change,
    )


@transaction.atomic
def _record(row: Cluster, probe: Probe, fields: dict[str, object], now: datetime) -> ClusterHealth:
    """One UPDATE of the cluster, if its state is still the one read before the check (else another check
    recorded a change in between, and its audit stands); a change of state audited and logged."""
    was = row.healthy
    same_state = Cluster.objects.filter(pk=row.pk, **({"healthy__isnull": True} if was is None else {"healthy": was}))
    if not same_state.update(health_checked_at=now, **fields):
        return _health(Cluster.objects.filter(pk=row.pk).first() or row, change="")  # (or deleted meanwhile)
    down_since = row.unhealthy_since
    for field, value in fields.items():
        setattr(row, field, value)
    row.health_checked_at = now
    change = ""
    if not probe.healthy and was is not False:
        change = "unreachable"
        log.warning("cluster %s is unreachable: %s", row.name, probe.detail)
        audit_record(
            actor=None,
            verb="cluster_unreachable",
            target=row,
            detail=probe.detail,
            from_state="unknown" if was is None else "healthy",
            to_state="unreachable",
        )
    elif probe.healthy and was is False:
        change = "recovered"
        detail = f"down since {down_since:%Y-%m-%d %H:%M:%S} UTC" if down_since else ""
        log.warning("cluster %s answers again (%s)", row.name, detail or "down before")
        audit_record(
            actor=None,
            verb="cluster_recovered",
            target=row,
            detail=detail,
            from_state="unreachable",
            to_state="healthy",
        )
        transaction.on_commit(lambda: _announce_recovery(row))
    return _health(row, change=change)


def _announce_recovery(row: Cluster) -> None:
    """Tell the receivers (the provisioning sweep) that `row` answers again; one that fails is logged, and
    the check goes on."""
    for receiver, answer in cluster_recovered.send_robust(sender=Cluster, cluster=row):
        if isinstance(answer, Exception):
            log.error("cluster %s recovered, but %r failed", row.name, receiver, exc_info=answer)
