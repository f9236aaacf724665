"""Reads for the lease dashboard, scoped to the caller's teams (all for admins)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Count, Exists, OuterRef, Q, QuerySet

from provisioning import cluster
from provisioning.errors import ClusterError, ClusterNotConfigured
from requests_app import kinds
from requests_app.models import AppTemplate, Cluster, Kind, Resource
from requests_app.names import kind_noun, kind_title
from requests_app.selectors import LIST_ORDER, bound_to, bound_to_database, teams_of, user_is_admin

from . import backup
from .kinds import backed_up_kinds
from .models import Lease, LeaseState

# The most rows each section of the dashboard and the forecast shows; each links to the resource list,
# which pages through the rest with the same filter.
DASHBOARD_ROWS = 20
FORECAST_ROWS = 25
# How far ahead the forecast looks beyond the next pass.
FORECAST_DAYS = 7


def leases_visible_to(user) -> QuerySet[Lease]:
    """Leases of the caller's teams' resources (every lease for admins), as `resources_visible_to` sees them."""
    leases = (
        Lease.objects.all()
        if user_is_admin(user)
        else Lease.objects.filter(resource__team__in=list(teams_of(user).values_list("pk", flat=True)))
    )
    return leases.select_related(
        "resource", "resource__team", "resource__owner", "resource__parent", "resource__parent__team"
    )


def dashboard(user, now: datetime) -> dict:
    """Leases expiring within 7 and 30 days, in grace, reclaimed in the last 30 days, and by expiry week."""
    leases = leases_visible_to(user)
    active = leases.filter(state=LeaseState.ACTIVE).order_by("expires_at")
    # One indexed range scan counted by the database, not a row per lease read into Python.
    week_filters = {
        f"w{w}": Count(
            "pk",
            filter=Q(expires_at__lt=now + timedelta(weeks=w + 1))
            & (Q() if w == 0 else Q(expires_at__gte=now + timedelta(weeks=w))),
        )
        for w in range(12)
    }
    counts = active.order_by().filter(expires_at__lt=now + timedelta(weeks=12)).aggregate(**week_filters)
    weeks = {w: counts[f"w{w}"] or 0 for w in range(12)}
    peak = max(weeks.values(), default=0)
    chart = [
        {
            "label": f"week {w + 1}",
            "week": w + 1,
            # The days the bar covers, for its text alternative (the last day is the one before the next week).
            "starts": now + timedelta(weeks=w),
            "ends": now + timedelta(weeks=w + 1, days=-1),
            "count": weeks.get(w, 0),
            "percent": round(100 * weeks.get(w, 0) / peak) if peak else 0,
            # The bar's height (0-100): at least 4 when there is anything, 1 (a base line) when not.
            "height": max(4, round(100 * weeks.get(w, 0) / peak)) if weeks.get(w, 0) else 1,
        }
        for w in range(12)
    ]
    sections = {
        "within_7": active.filter(expires_at__lte=now + timedelta(days=7)),
        "within_30": active.filter(expires_at__gt=now + timedelta(days=7), expires_at__lte=now + timedelta(days=30)),
        "in_grace": leases.filter(state=LeaseState.GRACE).order_by("grace_until", "pk"),
        "reclaiming": leases.filter(state=LeaseState.RECLAIMING).order_by("expires_at", "pk"),
        "reclaimed": leases.filter(state=LeaseState.RECLAIMED, reclaimed_at__gte=now - timedelta(days=30)).order_by(
            "-reclaimed_at", "pk"
        ),
    }
    out: dict = {"chart": chart, "chart_peak": peak, "rows": DASHBOARD_ROWS, "total": {}}
    for name, queryset in sections.items():
        out[name] = list(queryset[:DASHBOARD_ROWS])
        # Counted only when the page is full: each count is a range scan of a partial index.
        out["total"][name] = len(out[name]) if len(out[name]) < DASHBOARD_ROWS else queryset.order_by().count()
    return out


@dataclass
class ForecastSection:
    """One thing the reclamation will do: to which leases (the first FORECAST_ROWS of `total`), and when."""

    key: str
    title: str
    when: str
    # What the page says when the section is empty, in the one line that collects them.
    nothing: str = ""
    leases: list = field(default_factory=list)
    total: int = 0
    # Of a "deleted at the next pass" section: how many the pass takes (RECLAIM_MAX_PER_RUN); the rest wait.
    cap: int | None = None


def forecast(user, now: datetime) -> list[ForecastSection]:
    """What the reclamation will do to the caller's leases (every lease for admins): at the next pass, and
    in the FORECAST_DAYS after it. Each section is one indexed range scan (the partial indexes the pass
    itself selects by) for its first rows, and a count of the same range: no pass is run, nothing is read
    from the cluster or the directory, so a page costs the same at 1,000 leases as at 1,000,000."""
    leases = leases_visible_to(user)
    ahead = now + timedelta(days=FORECAST_DAYS)
    sections = [
        (
            ForecastSection("notice", "Expiry notices", "at the next pass", "no expiry notice to send"),
            leases.filter(state=LeaseState.ACTIVE, next_notice_at__lte=now, expires_at__gt=now).order_by(
                "next_notice_at", "pk"
            ),
        ),
        (
            ForecastSection(
                "grace",
                "Lease over: quarantined (workloads scaled to zero)",
                "at the next pass",
                "nothing to quarantine",
            ),
            leases.filter(state=LeaseState.ACTIVE, expires_at__lte=now).order_by("expires_at", "pk"),
        ),
        (
            ForecastSection(
                "delete",
                "Grace over: backed up (databases) and deleted",
                "at the next pass",
                "nothing to delete",
                cap=settings.RECLAIM_MAX_PER_RUN,
            ),
            leases.filter(state=LeaseState.GRACE, grace_until__lte=now).order_by("grace_until", "pk"),
        ),
        (
            ForecastSection(
                "reclaiming", "Being deleted: marked reclaimed once the cluster is done", "now", "nothing being deleted"
            ),
            leases.filter(state=LeaseState.RECLAIMING).order_by("expires_at", "pk"),
        ),
        (
            ForecastSection("expiring", "Lease ends: quarantined", f"within {FORECAST_DAYS} days", "no lease ends"),
            leases.filter(state=LeaseState.ACTIVE, expires_at__gt=now, expires_at__lte=ahead).order_by(
                "expires_at", "pk"
            ),
        ),
        (
            ForecastSection(
                "grace_ends", "Grace ends: deleted", f"within {FORECAST_DAYS} days", "no grace period ends"
            ),
            leases.filter(state=LeaseState.GRACE, grace_until__gt=now, grace_until__lte=ahead).order_by(
                "grace_until", "pk"
            ),
        ),
    ]
    out = []
    for section, queryset in sections:
        section.leases = list(queryset[:FORECAST_ROWS])
        section.total = len(section.leases) if len(section.leases) < FORECAST_ROWS else queryset.order_by().count()
        out.append(section)
    return out


# --- relations on the resource pages -------------------------------------------------------------------

# The most related resources a resource page lists; "and K more" links to the resource list filtered the same way.
RELATED_ROWS = 20


@dataclass
class Related:
    """The first RELATED_ROWS resources related to one, and how many more the filtered list holds."""

    rows: list[Resource]
    more: int = 0


def _related(queryset: QuerySet[Resource]) -> Related:
    rows = list(queryset.select_related("team", "owner", "parent", "parent__team", "lease")[: RELATED_ROWS + 1])
    if len(rows) <= RELATED_ROWS:
        return Related(rows)
    # Counted only when the page is full: a range scan of the index the rows were read by.
    return Related(rows[:RELATED_ROWS], queryset.order_by().count() - RELATED_ROWS)


def namespace_children(namespace: Resource) -> Related:
    """The databases and apps of a namespace, newest first (the `resources_children_order` index); seen by
    whoever sees the namespace, as they belong to its team."""
    return _related(Resource.objects.filter(parent=namespace, team_id=namespace.team_id).order_by(*LIST_ORDER))


def apps_bound_to(database: Resource) -> Related:
    """The apps of the database's team whose spec binds them to it, newest first (the
    `resources_apps_by_database` index)."""
    return _related(
        bound_to_database(Resource.objects.filter(team_id=database.team_id), database.pk).order_by(*LIST_ORDER)
    )


@dataclass
class BoundFrom:
    """The resources bound to one through `binding` (the apps using a database, or a cache)."""

    binding: kinds.Binding
    related: Related

    @property
    def list_filter(self) -> str:
        """The resource list's filter for these ("database", or the general "bound_to")."""
        return self.binding.spec_key if self.binding.spec_key == "database" else "bound_to"

    @property
    def caption(self) -> str:
        return f"{kind_title(self.binding.source_kind)}s bound to this {kind_noun(self.binding.target_kind)}"

    @property
    def heading(self) -> str:
        return f"{kind_title(self.binding.source_kind)}s using this {kind_noun(self.binding.target_kind)}"


def bound_from(target: Resource) -> list[BoundFrom]:
    """For each way others bind to `target`, the resources of its team bound to it, newest first."""
    out = []
    for binding in kinds.bindings_to(target.kind):
        bound = bound_to(Resource.objects.filter(team_id=target.team_id), binding, target.pk).order_by(*LIST_ORDER)
        out.append(BoundFrom(binding, _related(bound)))
    return out


@dataclass
class BoundTo:
    """What a resource's spec binds it to through `binding`; None when it names nothing (or nothing of its team)."""

    binding: kinds.Binding
    resource: Resource | None


def bound_resource(resource: Resource, binding: kinds.Binding) -> Resource | None:
    """The resource `resource`'s spec binds it to through `binding`, if it is of the same team (any state: a
    reclaimed one shows as such)."""
    try:
        target_id = uuid.UUID(str(resource.spec.get(binding.spec_key) or ""))
    except ValueError:
        return None
    return (
        Resource.objects.select_related("team", "parent", "parent__team")
        .filter(pk=target_id, kind=binding.target_kind, team_id=resource.team_id)
        .first()
    )


def bindings_of(resource: Resource) -> list[BoundTo]:
    """Every binding the resource's kind may have, with what it binds to."""
    return [BoundTo(b, bound_resource(resource, b)) for b in kinds.bindings_from(resource.kind)]


def bound_database(app: Resource) -> Resource | None:
    """The database an app's spec binds it to, if it is of the app's team (any state: a reclaimed one shows as such)."""
    return bound_resource(app, kinds.get(Kind.DATABASE).bindings[0])


def app_template_of(app: Resource) -> dict[str, str]:
    """The template an app was made from (as frozen on its create request) and the image it runs now."""
    frozen = app.created_by_request.frozen.get("template") or {}
    slug = frozen.get("slug") or app.spec.get("template", "")
    name = AppTemplate.objects.filter(slug=slug).values_list("name", flat=True).first() if slug else None
    repository = frozen.get("image_repository", "")
    tag = app.spec.get("image_tag", "")
    return {"slug": slug, "name": name or slug, "image": f"{repository}:{tag}" if repository and tag else tag}


def extend_candidates(namespace: Resource) -> Related:
    """The apps and databases of a namespace whose leases can be extended with it, soonest expiry first."""
    return _related(
        Resource.objects.filter(
            parent=namespace,
            team_id=namespace.team_id,
            lease__state__in=(LeaseState.ACTIVE, LeaseState.GRACE),
        ).order_by("lease__expires_at", "pk")
    )


def quarantined_children(namespace: Resource) -> list[Resource]:
    """The namespace's apps and databases still in grace (the first RELATED_ROWS): to say what an
    extension of the namespace alone left scaled to zero."""
    return list(
        Resource.objects.filter(parent=namespace, team_id=namespace.team_id, lease__state=LeaseState.GRACE)
        .select_related("team", "parent", "parent__team")
        .order_by("lease__expires_at", "pk")[:RELATED_ROWS]
    )


def forecast_problems(user, sections: list[ForecastSection], now: datetime) -> list[str]:
    """What the next pass will fail at, as the pass itself would find it, per cluster with work due for
    the caller: an API server that does not answer (one GET /readyz; the pass then quarantines and
    deletes nothing on it), and backup storage that is missing (two reads; every backup Job would fail,
    so no database is deleted). A cluster is asked only when the caller's next pass has work on it."""
    totals = {s.key: s.total for s in sections}
    if not (totals.get("grace") or totals.get("delete") or totals.get("reclaiming")):
        return []
    leases = leases_visible_to(user)
    due = leases.filter(state=LeaseState.GRACE, grace_until__lte=now)
    working = leases.filter(
        Q(state=LeaseState.ACTIVE, expires_at__lte=now)
        | Q(state=LeaseState.GRACE, grace_until__lte=now)
        | Q(state=LeaseState.RECLAIMING)
    )
    backed_up = backed_up_kinds()
    live_database = Resource.objects.filter(parent=OuterRef("resource"), kind__in=backed_up).exclude(
        state__in=Resource.TERMINAL
    )
    problems = []
    clusters = list(Cluster.objects.filter(pk__in=working.values("resource__cluster")).order_by("name"))
    for row, exc in zip(clusters, clusters_ready(clusters), strict=True):
        named = "" if row.name == cluster.DEFAULT else f" {row.name}"
        if exc is not None:
            problems.append(
                f"The next pass cannot reach the cluster{named} ({exc}). It will send the notices, but "
                "quarantine and delete nothing there until the cluster answers."
            )
            continue
        on_it = due.filter(resource__cluster=row)
        if not on_it.filter(Q(resource__kind__in=backed_up) | Exists(live_database)).exists():
            continue
        with cluster.using(row):
            problem = backup.backup_storage_checked()
        if problem:
            problems.append(
                f"Backups will fail{' on cluster' + named if named else ''}: {problem}. Databases, and the "
                "namespaces that hold them, are not deleted until their backup succeeds; the platform team is "
                "alerted."
            )
    return problems


def clusters_ready(clusters: list[Cluster]) -> list[ClusterError | ClusterNotConfigured | None]:
    """Ask each cluster's API server whether it is ready (one GET /readyz each, all at once, so that one
    that does not answer delays the answer by its own timeout only, at most 5 s): None for a cluster that
    is, else why not."""

    def ask(row: Cluster) -> ClusterError | ClusterNotConfigured | None:
        with cluster.using(row):
            try:
                cluster.ping()
            except (ClusterError, ClusterNotConfigured) as exc:
                return exc
        return None

    return cluster.map_bounded(ask, clusters, limit=len(clusters)) if clusters else []
