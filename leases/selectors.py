"""Reads for the lease dashboard, scoped to the caller's teams (all for admins)."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db.models import QuerySet

from requests_app.selectors import resources_visible_to

from .models import Lease, LeaseState


def leases_visible_to(user) -> QuerySet[Lease]:
    return Lease.objects.filter(resource__in=resources_visible_to(user)).select_related(
        "resource", "resource__team", "resource__owner", "resource__parent", "resource__parent__team"
    )


def dashboard(user, now: datetime) -> dict:
    """Leases expiring within 7 and 30 days, in grace, reclaimed in the last 30 days, and by expiry week."""
    leases = leases_visible_to(user)
    active = leases.filter(state=LeaseState.ACTIVE).order_by("expires_at")
    weeks: dict[int, int] = {}
    for expires in active.filter(expires_at__lte=now + timedelta(weeks=12)).values_list("expires_at", flat=True):
        week = max(0, (expires - now).days // 7)
        weeks[week] = weeks.get(week, 0) + 1
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
    return {
        "within_7": list(active.filter(expires_at__lte=now + timedelta(days=7))),
        "within_30": list(
            active.filter(expires_at__gt=now + timedelta(days=7), expires_at__lte=now + timedelta(days=30))
        ),
        "in_grace": list(leases.filter(state=LeaseState.GRACE).order_by("grace_until")),
        "reclaiming": list(leases.filter(state=LeaseState.RECLAIMING)),
        "reclaimed": list(
            leases.filter(state=LeaseState.RECLAIMED, reclaimed_at__gte=now - timedelta(days=30)).order_by(
                "-reclaimed_at"
            )[:50]
        ),
        "chart": chart,
    }
