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

from . import specs
from .models import Action, AppTemplate, Kind, Resource, ResourceRequest, Team
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
class Fact:
    """One line of the summary; `url` links to the resource or address it names."""

    label: str
    value: str
    url: str = ""


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
        """The facts a queue row shows (its own columns give the environment and the lease)."""
        return [f for f in self.facts if f.label not in ("Environment", "Lease")]


@dataclass
class _Lookups:
    """What summaries of several requests share, read once: bound databases, budgets, headroom."""

    databases: dict[str, Resource] = field(default_factory=dict)
    budgets: dict[int, dict[str, Any]] = field(default_factory=dict)
    headroom: dict[Any, specs.Usage] = field(default_factory=dict)
    templates: dict[str, AppTemplate] = field(default_factory=dict)


def _database_ids(requests: Iterable[ResourceRequest]) -> list[uuid.UUID]:
    ids = []
    for r in requests:
        ref = r.spec.get("database") if r.kind == Kind.APP and isinstance(r.spec, dict) else None
        if not ref:
            continue
        try:
            ids.append(uuid.UUID(str(ref)))
        except ValueError:
            continue
    return ids


def _costed(request: ResourceRequest) -> bool:
    """Whether the summary says what the request costs: a create request not made yet (or not filed)."""
    return request.action == Action.CREATE and (request._state.adding or request.state in UNPROVISIONED_STATES)


def _lookups(requests: list[ResourceRequest], *, costs: bool) -> _Lookups:
    """Read at once what the summaries share: a constant number of queries for any number of requests."""
    found = _Lookups()
    # The app templates the rows fall back on (those not frozen on their request yet), in one query.
    slugs = {
        r.spec.get("template")
        for r in requests
        if r.kind == Kind.APP and isinstance(r.spec, dict) and not _frozen_template(r)
    }
    if slugs - {None, ""}:
        found.templates = {t.slug: t for t in AppTemplate.objects.filter(slug__in=slugs - {None, ""})}
    ids = _database_ids(requests)
    if ids:
        rows = Resource.objects.filter(pk__in=ids, kind=Kind.DATABASE).select_related("team", "parent", "parent__team")
        found.databases = {str(d.pk): d for d in rows}
    if costs:
        costed = [r for r in requests if _costed(r)]
        teams = {r.team.pk: r.team for r in costed if r.kind == Kind.NAMESPACE}
        namespaces = {r.parent.pk: r.parent for r in costed if r.kind != Kind.NAMESPACE and r.parent is not None}
        if teams:
            found.budgets = teams_budget_left(teams.values())
        if namespaces:
            found.headroom = namespaces_headroom(namespaces.values())
    return found


def request_summary(request: ResourceRequest, *, costs: bool = True) -> RequestSummary:
    """The summary of one request, filed or not (an unsaved one also carries its approval route)."""
    return request_summaries([request], costs=costs)[0]


def request_summaries(requests: Iterable[ResourceRequest], *, costs: bool = True) -> list[RequestSummary]:
    """Summaries of several requests (a page of the queue): the bound databases are read in one query,
    and each team's budget and each namespace's headroom once, however many rows share them. Expects
    `team`, `parent__team` and `resource` loaded with the requests."""
    requests = list(requests)
    lookups = _lookups(requests, costs=costs)
    return [_summary(r, lookups, costs=costs) for r in requests]


def _resource_url(resource: Resource | None) -> str:
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
    if request.kind != Kind.NAMESPACE and request.parent is not None:
        facts.append(Fact("Namespace", request.parent.display_name, _resource_url(request.parent)))
    if request.action != Action.CREATE and request.resource_id:
        facts.append(Fact("Resource", request.display_name, reverse("resource-detail", args=[request.resource_id])))
    if request.kind == Kind.NAMESPACE:
        _namespace_facts(spec, facts)
    elif request.kind == Kind.DATABASE:
        _database_facts(spec, facts)
    elif request.kind == Kind.APP:
        _app_facts(request, spec, lookups, facts)
    facts.append(Fact("Environment", request.environment))
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


def _namespace_facts(spec: dict, facts: list[Fact]) -> None:
    try:
        quota = specs.namespace_quota(spec)
    except specs.ValidationFailed:
        facts.append(Fact("Plan", str(spec.get("plan", "custom"))))
        return
    facts.append(Fact("Plan", str(spec.get("plan") or "custom quantities")))
    usage = specs.quota_usage(quota)
    facts.append(
        Fact(
            "Quota",
            f"{human_quantity(usage.cpu, 'cpu')}, {human_quantity(usage.memory, 'memory')} memory, "
            f"{human_quantity(usage.storage, 'storage')} storage",
        )
    )


def _database_facts(spec: dict, facts: list[Fact]) -> None:
    engine = "PostgreSQL" if spec.get("engine", "postgres") == "postgres" else str(spec.get("engine"))
    facts.append(Fact("Engine", f"{engine} {spec.get('version', '')}".strip()))
    plan = spec.get("plan")
    sizes = specs.DATABASE_PLANS.get(plan) if isinstance(plan, str) else None
    if sizes is not None:
        cpu = human_quantity(specs.parse_quantity(sizes.cpu_limit), "cpu")
        memory = human_quantity(specs.parse_quantity(sizes.memory_limit), "memory")
        facts.append(Fact("Plan", f"{plan} (up to {cpu}, {memory} memory)"))
    storage = specs.quantity(spec.get("storage"))
    if storage is not None:
        facts.append(Fact("Storage", human_quantity(storage, "storage")))


def _frozen_template(request: ResourceRequest) -> dict:
    frozen = request.frozen.get("template") if isinstance(request.frozen, dict) else None
    return frozen if isinstance(frozen, dict) else {}


def _template_of(request: ResourceRequest, lookups: _Lookups) -> dict:
    """The app template as frozen on the request (what the worker applies), else as it is now."""
    frozen = _frozen_template(request)
    if frozen:
        return frozen
    slug = request.spec.get("template", "") if isinstance(request.spec, dict) else ""
    t = lookups.templates.get(slug)  # read with the others by _lookups
    if t is None:
        return {}
    return {
        "slug": t.slug,
        "image_repository": t.image_repository,
        "cpu_request": t.cpu_request,
        "cpu_limit": t.cpu_limit,
        "memory_request": t.memory_request,
        "memory_limit": t.memory_limit,
    }


def _app_facts(request: ResourceRequest, spec: dict, lookups: _Lookups, facts: list[Fact]) -> None:
    template = _template_of(request, lookups)
    facts.append(Fact("Template", str(spec.get("template", template.get("slug", "?")))))
    repository = template.get("image_repository", "")
    tag = spec.get("image_tag") or ""
    if repository or tag:
        facts.append(Fact("Image", f"{repository}:{tag}" if repository and tag else repository or tag))
    replicas = spec.get("replicas", 1)
    size = f"{replicas} replica{'s' if replicas != 1 else ''}"
    if template.get("cpu_limit") and template.get("memory_limit") and isinstance(replicas, int):
        usage = _app_usage(spec, template)
        size += f" (up to {human_quantity(usage.cpu, 'cpu')}, {human_quantity(usage.memory, 'memory')} memory)"
    facts.append(Fact("Size", size))
    database_ref = spec.get("database")
    if database_ref:
        database = lookups.databases.get(str(database_ref))
        if database is not None:
            facts.append(Fact("Database", database.display_name, _resource_url(database)))
        else:
            facts.append(Fact("Database", "a database that no longer exists"))
    host = spec.get("host")
    if host:
        facts.append(Fact("Host", str(host), f"https://{host}/"))
    env = spec.get("env")
    if isinstance(env, dict) and env:
        facts.append(Fact("Environment variables", ", ".join(sorted(map(str, env)))))


def _app_usage(spec: dict, template: dict) -> specs.Usage:
    resources = specs.ComputeResources(
        template.get("cpu_request", "0"),
        template["cpu_limit"],
        template.get("memory_request", "0"),
        template["memory_limit"],
    )
    return specs.app_usage(spec.get("replicas", 1), resources)


def _asked(request: ResourceRequest, spec: dict, lookups: _Lookups) -> specs.Usage | None:
    try:
        if request.kind == Kind.NAMESPACE:
            return specs.quota_usage(specs.namespace_quota(spec))
        if request.kind == Kind.DATABASE:
            return specs.database_usage(spec)
        template = _template_of(request, lookups)
        return _app_usage(spec, template) if template.get("cpu_limit") else None
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
    if request.kind == Kind.NAMESPACE:
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
    """What a database or app takes of its namespace's quota."""
    free = lookups.headroom[namespace.pk]
    quota = specs.quota_usage(specs.namespace_quota(namespace.spec))
    limits: dict[str, Decimal | None] = {k: getattr(quota, k) for k in ("cpu", "memory", "storage")}
    left: dict[str, Decimal | None] = {k: getattr(free, k) for k in ("cpu", "memory", "storage")}
    return Cost(
        of=f"namespace {namespace.display_name}'s quota",
        url=_resource_url(namespace),
        lines=tuple(_lines(asked, left, limits, counted)),
    )
