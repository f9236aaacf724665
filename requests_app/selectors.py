"""Reads of teams, requests, resources and events, always scoped to the caller."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from django.db.models import Count, F, Q, QuerySet, TextField
from django.db.models.fields.json import KeyTextTransform
from django.db.models.fields.tuple_lookups import Tuple, TupleGreaterThan
from django.db.models.functions import Cast

from .models import AuditEvent, Cluster, Kind, MailState, OutgoingMail, RequestState, Resource, ResourceRequest, Team
from .sections import request_prefetch, request_select, request_visibility, resource_prefetch, resource_select

# Lists of requests and resources, newest first; `id` breaks ties so that pages never overlap. Each
# model has an index on these columns (and one on team plus these) so a page reads only its rows.
LIST_ORDER = ("-created_at", "-id")
# The rows a keyset page reads (in_key_order).
KEY_PAGE = 250


def in_key_order(
    queryset: QuerySet, key: str, *, key_of: Callable[[Any], tuple[Any, Any]] | None = None, page: int | None = None
) -> Iterator[Any]:
    """Every row of `queryset` in (`key`, pk) order, read `page` rows at a time: each page is a query with
    ORDER BY and LIMIT that continues after the last row of the one before (keyset, never OFFSET), on an
    index of (`key`, id): many rows with the same `key` (the leases one pass moved to grace) cost a page
    no more than distinct ones.

    For a selection on a partial index of `key` joined to large tables: with a LIMIT, PostgreSQL walks
    the index in order and looks the joined rows up by key, whatever it estimates the selection to hold;
    without one, an estimate of thousands (two conditions it takes for independent, "active" and
    "expired", which never hold together) has it hash-join a scan of every joined row, and the read
    costs what the tables hold instead of what it finds. `key_of` gives a row's (key, pk) when the rows
    are not model instances (a values_list: put both in it)."""
    page = page or KEY_PAGE
    ordered = queryset.order_by(key, "pk")
    after = None
    while True:
        query = ordered
        if after is not None:
            # (key, id) > (last key, last id): where an index on (key, id) starts its scan, ties included.
            query = ordered.filter(TupleGreaterThan(Tuple(F(key), F("pk")), after))
        rows = list(query[:page])
        yield from rows
        if len(rows) < page:
            return
        last = rows[-1]
        after = key_of(last) if key_of is not None else (getattr(last, key), last.pk)


# The requests a cluster has work to do for: approved and waiting for a worker, or being provisioned.
WAITING_STATES = (RequestState.APPROVED, RequestState.PROVISIONING)


def user_is_admin(user) -> bool:
    return bool(user.is_authenticated and (user.is_superuser or user.is_staff))


def teams_of(user) -> QuerySet[Team]:
    """The teams whose group the user belongs to."""
    if not user.is_authenticated:
        return Team.objects.none()
    return Team.objects.filter(group__user=user)


def _team_ids(user) -> list[int]:
    """The caller's team ids, read first: as a list of constants (not a subquery) PostgreSQL can walk the
    `(team, -created_at, -id)` index of each team and stop at the page instead of filtering every row."""
    return list(teams_of(user).values_list("pk", flat=True))


def clusters_placeable_by(user) -> list[Cluster]:
    """The clusters the caller may place a namespace on: every cluster for admins; for the others, those
    that take new requests and serve an environment, when the caller is in a team (who is in none can file
    nothing). Every team may file for every environment, so no environment is left out for a member."""
    if not user.is_authenticated:
        return []
    if user_is_admin(user):
        return list(Cluster.objects.order_by("name"))
    if not teams_of(user).exists():
        return []
    return [c for c in Cluster.objects.filter(accepting=True).order_by("name") if c.environments]


def clusters_visible_to(user) -> list[Cluster]:
    """The clusters the Clusters page shows: every cluster to admins and to approvers (whose queue holds
    requests for any of them), to others those they may place on (as GET /api/v1/clusters/)."""
    if user_is_admin(user) or (
        user.is_authenticated and any(also_visible(user) is not None for also_visible in request_visibility)
    ):
        return list(Cluster.objects.order_by("name"))
    return clusters_placeable_by(user)


def requests_waiting_on(user, clusters: list[Cluster]) -> dict[int, dict[str, int]]:
    """How many of the requests the caller may see are approved or provisioning, per cluster and state:
    the work each cluster has still to do (one query)."""
    counts: dict[int, dict[str, int]] = {c.pk: {} for c in clusters}
    rows = (
        requests_visible_to(user)
        .prefetch_related(None)
        .filter(cluster__in=[c.pk for c in clusters], state__in=WAITING_STATES)
        .order_by()
        .values_list("cluster_id", "state")
        .annotate(n=Count("pk"))
    )
    for cluster_id, state, n in rows:
        counts[cluster_id][state] = n
    return counts


def teams_for_filters(user) -> QuerySet[Team]:
    """The teams a list can be filtered by: the caller's (every team for admins)."""
    return Team.objects.order_by("slug") if user_is_admin(user) else teams_of(user).order_by("slug")


def requests_visible_to(user) -> QuerySet[ResourceRequest]:
    """Requests of the caller's teams, and those the caller may approve (every request for admins)."""
    # `team` and `parent__team` make the display name (`atlas-web / orders`) without a query per row.
    qs = ResourceRequest.objects.select_related(
        "team", "requester", "resource", "parent__team", "cluster", *request_select
    ).order_by(*LIST_ORDER)
    if request_prefetch:
        qs = qs.prefetch_related(*request_prefetch)
    if user_is_admin(user):
        return qs
    if not user.is_authenticated:
        return qs.none()
    # Each part is a semi-join (`team_id IN (...)`, `id IN (SELECT request_id ...)`) rather than a join,
    # so no row is repeated and PostgreSQL can walk the `(-created_at, -id)` index and stop at the page.
    visible = Q(team__in=_team_ids(user))
    for also_visible in request_visibility:
        more = also_visible(user)
        if more is not None:
            visible |= more
    return qs.filter(visible)


def resources_visible_to(user) -> QuerySet[Resource]:
    """Resources of the caller's teams (every resource for admins)."""
    qs = Resource.objects.select_related(
        "team", "owner", "parent", "parent__team", "cluster", *resource_select
    ).order_by(*LIST_ORDER)
    if resource_prefetch:
        qs = qs.prefetch_related(*resource_prefetch)
    if user_is_admin(user):
        return qs
    return qs.filter(team__in=_team_ids(user))


def request_events(request: ResourceRequest) -> QuerySet[AuditEvent]:
    """The request's timeline, oldest first."""
    return request.events.order_by("at", "id")


def catalog() -> dict:
    """What can be requested: kinds with spec schemas and plans, environments, app templates, lease limits."""
    from django.conf import settings

    from . import kinds
    from .models import AppTemplate, Environment

    templates = [
        {
            "slug": t.slug,
            "name": t.name,
            "description": t.description,
            "image_repository": t.image_repository,
            "default_tag": t.default_tag,
            "container_port": t.container_port,
            "health_path": t.health_path,
            "default_env": t.default_env,
            "resources": {
                "cpu_request": t.cpu_request,
                "cpu_limit": t.cpu_limit,
                "memory_request": t.memory_request,
                "memory_limit": t.memory_limit,
            },
            "accepts_database": t.accepts_database,
        }
        for t in AppTemplate.objects.filter(active=True).order_by("slug")
    ]
    return {
        "kinds": [kind.catalog_entry() for kind in kinds.all()],
        "environments": list(Environment.values),
        "templates": templates,
        "lease": {"default_days": settings.LEASE_DEFAULT_DAYS, "max_days": settings.LEASE_MAX_DAYS},
    }


def mail_pending() -> QuerySet[OutgoingMail]:
    """Mail in the outbox that the mail backend has not accepted yet, oldest first (the order it is sent in)."""
    return OutgoingMail.objects.filter(state=MailState.PENDING).order_by("created_at", "pk")


def bound_to(queryset: QuerySet[Resource], binding, target_id) -> QuerySet[Resource]:
    """The resources of `queryset` whose spec binds them to `target_id` through `binding` (a
    `kinds.Binding`): `spec ->> '<key>'` as text, which the `resources_apps_by_database` index holds on
    PostgreSQL for databases (the cast to text is a no-op there) and which SQLite compares as plain text
    (a bare key transform would compare it as JSON, and fail)."""
    return queryset.alias(bound_id=Cast(KeyTextTransform(binding.spec_key, "spec"), TextField())).filter(
        kind=binding.source_kind, bound_id=str(target_id)
    )


def bound_to_database(queryset: QuerySet[Resource], database_id) -> QuerySet[Resource]:
    """The apps of `queryset` bound to the database (see `bound_to`)."""
    from . import kinds

    return bound_to(queryset, kinds.get(Kind.DATABASE).bindings[0], database_id)
