from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from . import kinds, services, specs
from .errors import LeaseholdError, ValidationFailed, public_message
from .filtersets import RequestFilter
from .forms import form_for
from .models import Environment, Kind, RequestState
from .pages import filtered_page
from .presenters import cluster_row, request_summary
from .sections import request_sections
from .selectors import (
    catalog,
    clusters_visible_to,
    request_events,
    requests_visible_to,
    requests_waiting_on,
    resources_visible_to,
    teams_for_filters,
    teams_of,
)


@login_required
def home(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "requests_app/home.html",
        {
            "teams": teams_of(request.user),
            "requests": requests_visible_to(request.user).filter(requester_id=request.user.pk)[:10],
            "resources": resources_visible_to(request.user).exclude(state="reclaimed")[:10],
        },
    )


@login_required
def request_list(request: HttpRequest) -> HttpResponse:
    """The caller's requests, a page at a time, with the API's filters (`search`, `state`, `kind`, `team`,
    `environment`)."""
    filterset = RequestFilter(request.GET, queryset=requests_visible_to(request.user))
    return render(
        request,
        "requests_app/request_list.html",
        {
            "page": filtered_page(filterset, request.GET),
            "states": RequestState.choices,
            "kinds": kinds.choices(),
            "environments": Environment.choices,
            "teams": teams_for_filters(request.user),
            "cluster_filter": True,
        },
    )


@login_required
def cluster_list(request: HttpRequest) -> HttpResponse:
    """Each cluster the caller may see (every one for admins and approvers, else those they may place on):
    its health as the last check found it, committed quota against capacity, and the requests waiting on
    it. A constant number of queries, however many clusters and requests there are."""
    from .clusters import clusters_committed

    clusters = clusters_visible_to(request.user)
    committed = clusters_committed(clusters)
    waiting = requests_waiting_on(request.user, clusters)
    rows = [cluster_row(c, committed[c.pk], waiting[c.pk]) for c in clusters]
    check_seconds = int(settings.CELERY_BEAT_SCHEDULE.get("check-clusters", {}).get("schedule", 30))
    return render(request, "requests_app/cluster_list.html", {"rows": rows, "check_seconds": check_seconds})


def _form_for(request: HttpRequest, data=None):
    kind = (data or request.GET).get("kind", Kind.NAMESPACE)
    form_class = form_for(kind)
    return form_class(data, user=request.user)


def _budgets(user) -> list[dict]:
    out = []
    for team in teams_of(user):
        left = services.team_budget_left(team)
        out.append(
            {
                "team": team.slug,
                "left": {
                    k: (specs.format_quantity(v, k) if v is not None else "no limit")
                    for k, v in left.items()
                    if k != "namespaces"
                },
                "namespaces": left["namespaces"] if left["namespaces"] is not None else "no limit",
            }
        )
    return out


@login_required
def request_new(request: HttpRequest) -> HttpResponse:
    """One form per kind; htmx swaps the fields when the kind changes and renders the plan preview."""
    form = _form_for(request, request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            filed = services.request_submit(requester=request.user, **form.service_fields())
        except ValidationFailed as exc:
            form.add_service_errors(exc.errors)
        else:
            messages.success(request, f"Filed: {filed.title} ({filed.get_state_display().lower()}).")
            return redirect("request-detail", pk=filed.pk)
    partial = request.headers.get("HX-Request") == "true"
    template = "requests_app/_request_form.html" if partial else "requests_app/request_new.html"
    return render(
        request,
        template,
        {
            "form": form,
            "kinds": kinds.names(),
            "has_teams": teams_of(request.user).exists(),
            "budgets": _budgets(request.user),
        },
    )


@login_required
@require_POST
def request_preview(request: HttpRequest) -> HttpResponse:
    """The objects the form's request would apply (or why it would be refused), for the htmx preview."""
    form = _form_for(request, request.POST)
    manifests = ""
    summary = None
    if form.is_valid():
        try:
            unsaved = services.request_build(requester=request.user, **form.service_fields())
        except ValidationFailed as exc:
            form.add_service_errors(exc.errors)
        else:
            render_plan = request_sections.get("plan_yaml")
            manifests = render_plan(unsaved) if render_plan else ""
            summary = request_summary(unsaved)
    return render(
        request, "requests_app/_plan_preview.html", {"form": form, "manifests": manifests, "summary": summary}
    )


@login_required
def request_detail(request: HttpRequest, pk) -> HttpResponse:
    filed = get_object_or_404(requests_visible_to(request.user), pk=pk)
    sections = {name: render_section(filed) for name, render_section in request_sections.items()}
    return render(
        request,
        "requests_app/request_detail.html",
        {"req": filed, "events": request_events(filed), "sections": sections, "summary": request_summary(filed)},
    )


@login_required
@require_POST
def request_cancel_view(request: HttpRequest, pk) -> HttpResponse:
    filed = get_object_or_404(requests_visible_to(request.user), pk=pk)
    try:
        services.request_cancel(request=filed, actor=request.user)
        messages.success(request, "Request cancelled.")
    except LeaseholdError as exc:
        messages.error(request, public_message(exc))
    return redirect("request-detail", pk=filed.pk)


@login_required
def catalog_page(request: HttpRequest) -> HttpResponse:
    return render(request, "requests_app/catalog.html", {"catalog": catalog()})
