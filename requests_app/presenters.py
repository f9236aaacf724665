"""The readable summary of a request: what it makes, its size, what it costs of the team's budget or the
namespace's quota, and (before filing) who must approve it. One computation for the request page, the
plan preview, the approval queue and the objects page (a selector: reads only)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.urls import reverse

from . import kinds, specs
from .kinds.base import Fact
from .models import Action, Resource, ResourceRequest, Team
from .sections import request_previews
from .services import UNPROVISIONED_STATES, namespaces_headroom, teams_budget_left

QUANTITY_LABELS = {"cpu": "CPU", "memory": "Memory", "storage": "Storage"}
NO_LIMIT = "no limit"
GI = Decimal(1024**3)
MI = Decimal(1024**2)


def human_quantity(value: Decimal, kind: str) -> str:
    """A quantity as a person reads it: `0.5 CPU`, `2 CPUs`, `512 MiB`, `4 GiB`, `1.5 GiB`."""
    if kind == "cpu":
        shown = f"{value.quantize(Decimal('0.001')).normalize():f}"
        return f"{shown} CPU" if value <= 1 else f"{shown} CPUs"
    if value == 0:
        return "0 GiB"
    if abs(value) < GI:
        return f"{(value / MI).quantize(Decimal('0.1')).normalize():f} MiB"
    return f"{(value / GI).quantize(Decimal('0.01')).normalize():f} GiB"


@dataclass(frozen=True)
class CostLine:
    quantity: str  # "CPU", "Memory", "Storage", "Namespaces"
    asked: str
    used: str  # by everything else already there or on its way
    left_after: str
    limit: str
    over: bool = False


@dataclass(frozen=True)
class Cost:
    """What the request takes from one pool: `of` is "team atlas's budget" or "namespace …'s quota"."""

    of: str
    url: str
    lines: tuple[CostLine, ...]

    @property
    def unlimited(self) -> bool:
        return all(line.limit == NO_LIMIT for line in self.lines)


@dataclass
class RequestSummary:
    headline: str  # "New database atlas-checkout / orders"
    facts: list[Fact] = field(default_factory=list)
    costs: list[Cost] = field(default_factory=list)
    # Before filing: the route the approval policy gives it ({"rule", "at_once", "steps"}); else None.
    approval: Any = None

    @property
    def brief(self) -> list[Fact]:
        """The facts a queue row shows (its own columns give the environment, the cluster and the lease)."""
        return [f for f in self.facts if f.label not in ("Environment", "Cluster", "Lease")]


@dataclass
class _Lookups:
    """What summaries of several requests share, read once: bound resources, budgets, headroom."""

    bound: dict[str, Resource] = field(default_factory=dict)  # what apps bind to (databases, caches), by id
    budgets: dict[int, dict[str, Any]] = field(default_factory=dict)
    headroom: dict[Any, specs.Usage] = field(default_factory=dict)
    templates: dict[str, dict] = field(default_factory=dict)


def _bound_ids(requests: Iterable[ResourceRequest]) -> list[uuid.UUID]:
    ids = []
    for r in requests:
        if not isinstance(r.spec, dict):
            continue
        for binding in kinds.bindings_from(r.kind):
            ref = r.spec.get(binding.spec_key)
            if not ref:
                continue
            try:
                ids.append(uuid.UUID(str(ref)))
            except ValueError:
                continue
    return ids


def _in_namespace(request: ResourceRequest) -> bool:
    kind = kinds.find(request.kind)
    return kind is None or kind.in_namespace


def _costed(request: ResourceRequest) -> bool:
    """Whether the summary says what the request costs: a create request not made yet (or not filed)."""
    return request.action == Action.CREATE and (request._state.adding or request.state in UNPROVISIONED_STATES)


def _lookups(requests: list[ResourceRequest], *, costs: bool) -> _Lookups:
    """Read at once what the summaries share: a constant number of queries for any number of requests."""
    found = _Lookups()
    ids = _bound_ids(requests)
    if ids:
        rows = Resource.objects.filter(pk__in=ids).select_related("team", "parent", "parent__team")
        found.bound = {str(d.pk): d for d in rows}
    if costs:
        costed = [r for r in requests if _costed(r)]
        teams = {r.team.pk: r.team for r in costed if not _in_namespace(r)}
        namespaces = {r.parent.pk: r.parent for r in costed if _in_namespace(r) and r.parent is not None}
        if teams:
            found.budgets = teams_budget_left(teams.values())
        if namespaces:
            found.headroom = namespaces_headroom(namespaces.values())
    return found


def request_summary(request: ResourceRequest, *, costs: bool = True) -> RequestSummary:
    """The summary of one request, filed or not (an unsaved one also carries its approval route)."""
    return request_summaries([request], costs=costs)[0]


def request_summaries(requests: Iterable[ResourceRequest], *, costs: bool = True) -> list[RequestSummary]:
    """Summaries of several requests (a page of the queue): the bound resources are read in one query,
    and each team's budget and each namespace's headroom once, however many rows share them. Expects
    `team`, `parent__team` and `resource` loaded with the requests."""
    requests = list(requests)
    lookups = _lookups(requests, costs=costs)
    return [_summary(r, lookups, costs=costs) for r in requests]


def resource_url(resource: Resource | None) -> str:
    return reverse("resource-detail", args=[resource.pk]) if resource is not None and resource.pk else ""


def _headline(request: ResourceRequest) -> str:
    verbs: dict[str, str] = {
        Action.CREATE: "New",
        Action.EXTEND: "Extend",
        Action.RELEASE: "Release",
        Action.UPGRADE: "Upgrade",
        Action.ROLLBACK: "Roll back",
    }
    return f"{verbs.get(request.action, request.action)} {request.kind} {request.display_name}"


def _summary(request: ResourceRequest, lookups: _Lookups, *, costs: bool) -> RequestSummary:
    spec = request.spec if isinstance(request.spec, dict) else {}
    summary = RequestSummary(headline=_headline(request))
    facts = summary.facts
    if _in_namespace(request) and request.parent is not None:
        facts.append(Fact("Namespace", request.parent.display_name, resource_url(request.parent)))
    if request.action != Action.CREATE and request.resource_id:
        facts.append(Fact("Resource", request.display_name, reverse("resource-detail", args=[request.resource_id])))
    kind = kinds.find(request.kind)
    if kind is not None:
        facts.extend(kind.summary_facts(request, spec, lookups))
    facts.append(Fact("Environment", request.environment))
    if request.cluster_id is not None:
        facts.append(Fact("Cluster", request.cluster.name))
    days = "day" if request.lease_days == 1 else "days"
    lease = f"{request.lease_days} more {days}" if request.action == Action.EXTEND else f"{request.lease_days} {days}"
    facts.append(Fact("Lease", lease))
    unsaved = request._state.adding
    if costs and _costed(request):
        cost = _cost(request, spec, lookups, counted=not unsaved)
        if cost is not None:
            summary.costs.append(cost)
    if unsaved and "approval" in request_previews:
        summary.approval = request_previews["approval"](request)
    return summary


def _asked(request: ResourceRequest, spec: dict, lookups: _Lookups) -> specs.Usage | None:
    kind = kinds.find(request.kind)
    if kind is None:
        return None
    try:
        return kind.usage(spec, frozen=request.frozen, context=lookups.templates)
    except (specs.ValidationFailed, KeyError, ValueError, TypeError, ArithmeticError):
        return None


def _lines(
    asked: specs.Usage, left: dict[str, Decimal | None], limits: dict[str, Decimal | None], counted: bool
) -> list[CostLine]:
    """Cost lines: `left` is what the pool has free now; when the request is `counted` in it already (it
    is filed), what is left after it is `left`, else `left - asked`."""
    lines = []
    for key in ("cpu", "memory", "storage"):
        need = getattr(asked, key)
        limit = limits[key]
        if limit is None:
            lines.append(CostLine(QUANTITY_LABELS[key], human_quantity(need, key), "—", NO_LIMIT, NO_LIMIT))
            continue
        free = left[key]
        free = limit if free is None else free
        after = free if counted else free - need
        used = limit - after - need
        lines.append(
            CostLine(
                QUANTITY_LABELS[key],
                human_quantity(need, key),
                human_quantity(used, key),
                human_quantity(after, key),
                human_quantity(limit, key),
                over=after < 0,
            )
        )
    return lines


def _cost(request: ResourceRequest, spec: dict, lookups: _Lookups, *, counted: bool) -> Cost | None:
    asked = _asked(request, spec, lookups)
    if asked is None:
        return None
    if not _in_namespace(request):
        return _budget_cost(request.team, asked, lookups, counted=counted)
    if request.parent is None:
        return None
    return _quota_cost(request.parent, asked, lookups, counted=counted)


def _budget_cost(team: Team, asked: specs.Usage, lookups: _Lookups, *, counted: bool) -> Cost:
    """What a namespace takes of its team's budget (CPU, memory, storage and one namespace)."""
    left = lookups.budgets[team.pk]
    limits: dict[str, Decimal | None] = {}
    for key in ("cpu", "memory", "storage"):
        budget = getattr(team, f"budget_{key}")
        limits[key] = specs.parse_quantity(budget) if budget else None
    lines = _lines(asked, left, limits, counted)
    if team.budget_namespaces is not None:
        after = left["namespaces"] if counted else left["namespaces"] - 1
        used = team.budget_namespaces - after - 1
        lines.append(CostLine("Namespaces", "1", str(used), str(after), str(team.budget_namespaces), over=after < 0))
    return Cost(of=f"team {team.slug}'s budget", url="", lines=tuple(lines))


def _quota_cost(namespace: Resource, asked: specs.Usage, lookups: _Lookups, *, counted: bool) -> Cost:
    """What a database, app or cache takes of its namespace's quota."""
    free = lookups.headroom[namespace.pk]
    quota = specs.quota_usage(specs.namespace_quota(namespace.spec))
    limits: dict[str, Decimal | None] = {k: getattr(quota, k) for k in ("cpu", "memory", "storage")}
    left: dict[str, Decimal | None] = {k: getattr(free, k) for k in ("cpu", "memory", "storage")}
    return Cost(
        of=f"namespace {namespace.display_name}'s quota",
        url=resource_url(namespace),
        lines=tuple(_lines(asked, left, limits, counted)),
    )


@dataclass(frozen=True)
class ClusterQuantity:
    """One quantity of a cluster as its page shows it: committed against what admission lets be committed."""

    label: str
    committed: str
    capacity: str  # NO_LIMIT when there is none
    percent: int | None
    source: str  # "nodes" (read by the health check), "admin" (entered), "" (no limit)


@dataclass(frozen=True)
class ClusterWaiting:
    label: str
    count: int
    url: str


@dataclass(frozen=True)
class ClusterRow:
    """A cluster on the Clusters page: itself, its quantities, and the requests it has still to do."""

    cluster: Any
    quantities: list[ClusterQuantity]
    waiting: list[ClusterWaiting]


def cluster_row(cluster: Any, committed: specs.Usage, waiting: dict[str, int]) -> ClusterRow:
    """The page's row of `cluster` from its committed quota (requests_app.clusters.clusters_committed) and
    its waiting requests by state (selectors.requests_waiting_on). No query."""
    from urllib.parse import urlencode

    from .models import RequestState

    capacity = cluster.capacity()
    quantities = []
    for key, label in QUANTITY_LABELS.items():
        used, limit = getattr(committed, key), capacity[key]
        quantities.append(
            ClusterQuantity(
                label=label,
                committed=human_quantity(used, key),
                capacity=NO_LIMIT if limit is None else human_quantity(limit, key),
                percent=int(used * 100 / limit) if limit else None,
                source="admin" if getattr(cluster, f"allocatable_{key}") else ("nodes" if limit is not None else ""),
            )
        )
    states = ((RequestState.APPROVED, "approved, waiting for a worker"), (RequestState.PROVISIONING, "provisioning"))
    rows = [
        ClusterWaiting(
            label=label,
            count=waiting.get(state, 0),
            url=reverse("request-list") + "?" + urlencode({"cluster": cluster.name, "state": state}),
        )
        for state, label in states
    ]
    return ClusterRow(cluster=cluster, quantities=quantities, waiting=rows)
