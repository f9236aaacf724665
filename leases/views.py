from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from requests_app.errors import LeaseholdError
from requests_app.selectors import resources_visible_to

from .services import resource_release


@login_required
def resource_list(request: HttpRequest) -> HttpResponse:
    resources = resources_visible_to(request.user).select_related("lease")[:200]
    return render(request, "leases/resource_list.html", {"resources": resources})


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
        messages.error(request, str(exc))
    return redirect("resource-detail", pk=resource.pk)
