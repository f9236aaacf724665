from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from . import services
from .errors import LeaseholdError, ValidationFailed
from .forms import NamespaceRequestForm
from .sections import request_sections
from .selectors import request_events, requests_visible_to, resources_visible_to, teams_of


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
    return render(request, "requests_app/request_list.html", {"requests": requests_visible_to(request.user)[:200]})


@login_required
def request_new(request: HttpRequest) -> HttpResponse:
    teams = list(teams_of(request.user).values_list("slug", flat=True))
    form = NamespaceRequestForm(request.POST or None, teams=teams)
    if request.method == "POST" and form.is_valid():
        try:
            filed = services.request_submit(requester=request.user, **form.service_fields())
        except ValidationFailed as exc:
            form.add_service_errors(exc.errors)
        else:
            messages.success(request, f"Request for {filed.team.slug}-{filed.name} filed: {filed.get_state_display()}.")
            return redirect("request-detail", pk=filed.pk)
    return render(request, "requests_app/request_new.html", {"form": form, "teams": teams})


@login_required
def request_detail(request: HttpRequest, pk) -> HttpResponse:
    filed = get_object_or_404(requests_visible_to(request.user), pk=pk)
    sections = {name: render_section(filed) for name, render_section in request_sections.items()}
    return render(
        request,
        "requests_app/request_detail.html",
        {"req": filed, "events": request_events(filed), "sections": sections},
    )


@login_required
@require_POST
def request_cancel_view(request: HttpRequest, pk) -> HttpResponse:
    filed = get_object_or_404(requests_visible_to(request.user), pk=pk)
    try:
        services.request_cancel(request=filed, actor=request.user)
        messages.success(request, "Request cancelled.")
    except LeaseholdError as exc:
        messages.error(request, str(exc))
    return redirect("request-detail", pk=filed.pk)
