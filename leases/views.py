from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from provisioning.services import app_rollback_file, app_upgrade_file
from requests_app.errors import LeaseholdError, ValidationFailed, public_message
from requests_app.models import Kind, ResourceRequest, ResourceState
from requests_app.pages import page_of
from requests_app.sections import resource_sections
from requests_app.selectors import resources_visible_to, teams_for_filters

from .api.views import ResourceFilter
from .models import Lease
from .selectors import FORECAST_DAYS, dashboard, forecast, forecast_problems
from .services import database_now, lease_extend, resource_release, resource_restore


@login_required
def resource_list(request: HttpRequest) -> HttpResponse:
    """The caller's resources, a page at a time, with the API's filters (`search`, `state`, `kind`, `team`)."""
    filtered = ResourceFilter(request.GET, queryset=resources_visible_to(request.user)).qs
    return render(
        request,
        "leases/resource_list.html",
        {
            "page": page_of(filtered, request.GET),
            "states": ResourceState.choices,
            "kinds": Kind.choices,
            "teams": teams_for_filters(request.user),
        },
    )


@login_required
def resource_detail(request: HttpRequest, pk) -> HttpResponse:
    resource = get_object_or_404(resources_visible_to(request.user).select_related("lease"), pk=pk)
    return render(
        request,
        "leases/resource_detail.html",
        {
            "resource": resource,
            "objects": resource.managed_objects.all(),
            "events": resource.events.order_by("at", "id"),
            "backups": resource.backups.all(),
            "connection": resource_sections["connection"](resource) if "connection" in resource_sections else None,
            "max_days": settings.LEASE_MAX_DAYS,
            "releases": resource.releases.order_by("-number") if resource.kind == "app" else [],
        },
    )


@login_required
@require_POST
def resource_release_view(request: HttpRequest, pk) -> HttpResponse:
    resource = get_object_or_404(resources_visible_to(request.user), pk=pk)
    try:
        done, note = resource_release(resource=resource, actor=request.user)
        messages.success(request, "Released and deleted." if done else f"Release started: {note}")
    except LeaseholdError as exc:
        messages.error(request, public_message(exc))
    return redirect("resource-detail", pk=resource.pk)


@login_required
@require_POST
def resource_extend_view(request: HttpRequest, pk) -> HttpResponse:
    resource = get_object_or_404(resources_visible_to(request.user), pk=pk)
    try:
        days = int(request.POST.get("days", ""))
    except ValueError:
        messages.error(request, "Days: give a whole number.")
        return redirect("resource-detail", pk=resource.pk)
    try:
        outcome, result = lease_extend(
            resource=resource, actor=request.user, days=days, justification=request.POST.get("justification", "")
        )
    except ValidationFailed as exc:
        messages.error(request, " ".join(m for ms in exc.errors.values() for m in ms))
    except LeaseholdError as exc:
        messages.error(request, public_message(exc))
    else:
        if isinstance(result, ResourceRequest):
            messages.info(request, "That goes beyond the lease policy: an extension request now waits for approval.")
            return redirect("request-detail", pk=result.pk)
        if isinstance(result, Lease):
            messages.success(request, f"Extended: the lease now ends {result.expires_at:%Y-%m-%d %H:%M} UTC.")
    next_page = request.POST.get("next", "")
    if next_page.startswith("/") and not next_page.startswith("//"):
        return redirect(next_page)
    return redirect("resource-detail", pk=resource.pk)


@login_required
def lease_dashboard(request: HttpRequest) -> HttpResponse:
    return render(request, "leases/dashboard.html", {"d": dashboard(request.user, database_now())})


@login_required
def reclaim_forecast(request: HttpRequest) -> HttpResponse:
    """What the reclamation will do to the caller's leases (admins: all), next pass and next days.

    Answered from the indexes the pass selects by, never by running a pass (`reclaim_leases --dry-run`
    is the whole dry run, for operators)."""
    now = database_now()
    sections = forecast(request.user, now)
    context = {
        "due": [s for s in sections if s.total],
        "nothing": [s.nothing for s in sections if not s.total],
        "problems": forecast_problems(request.user, sections, now),
        "now": now,
        "days": FORECAST_DAYS,
        # Beat starts a pass every 15 minutes (config/settings.py); with `cron`, an outside scheduler does.
        "next_pass": "within 15 minutes" if settings.LEASEHOLD_RECLAIM_SCHEDULE == "beat" else "at its next run",
    }
    return render(request, "leases/forecast.html", context)


@login_required
@require_POST
def resource_restore_view(request: HttpRequest, pk) -> HttpResponse:
    resource = get_object_or_404(resources_visible_to(request.user), pk=pk)
    try:
        filed = resource_restore(resource=resource, actor=request.user)
    except ValidationFailed as exc:
        messages.error(request, "Cannot restore: " + " ".join(m for ms in exc.errors.values() for m in ms))
    except LeaseholdError as exc:
        messages.error(request, public_message(exc))
    else:
        messages.success(request, "Restore requested.")
        return redirect("request-detail", pk=filed.pk)
    return redirect("resource-detail", pk=resource.pk)


@login_required
@require_POST
def app_change_view(request: HttpRequest, pk) -> HttpResponse:
    """Upgrade an app to another image tag, or roll it back to a release: files a request."""
    resource = get_object_or_404(resources_visible_to(request.user), pk=pk)
    justification = request.POST.get("justification", "")
    try:
        if request.POST.get("op") == "rollback":
            try:
                release = int(request.POST.get("release", ""))
            except ValueError:
                raise ValidationFailed({"release": ["Choose a release."]}) from None
            filed = app_rollback_file(
                resource=resource, actor=request.user, release=release, justification=justification
            )
        else:
            filed = app_upgrade_file(
                resource=resource,
                actor=request.user,
                image_tag=request.POST.get("image_tag", "").strip(),
                justification=justification,
            )
    except ValidationFailed as exc:
        messages.error(request, " ".join(m for ms in exc.errors.values() for m in ms))
    except LeaseholdError as exc:
        messages.error(request, public_message(exc))
    else:
        messages.success(request, f"{filed.get_action_display()} requested.")
        return redirect("request-detail", pk=filed.pk)
    return redirect("resource-detail", pk=resource.pk)
