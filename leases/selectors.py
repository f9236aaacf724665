"""Reads for the lease dashboard, scoped to the caller's teams (all for admins)."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db.models import Count, Q, QuerySet

from requests_app.selectors import teams_of, user_is_admin

from .models import Lease, LeaseState

# The most rows each section of the dashboard shows; the resource list pages through the rest.
DASHBOARD_ROWS = 100


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
    out: dict = {"chart": chart, "more": {}, "rows": DASHBOARD_ROWS}
    for name, queryset in sections.items():
        rows = list(queryset[: DASHBOARD_ROWS + 1])
        out[name] = rows[:DASHBOARD_ROWS]
        out["more"][name] = len(rows) > DASHBOARD_ROWS
    return out
