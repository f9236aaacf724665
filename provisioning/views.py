"""Pages of the provisioning app: the Kubernetes objects a request applies, for people to read."""

from __future__ import annotations

import yaml
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render

from requests_app.presenters import request_summary
from requests_app.selectors import requests_visible_to

from .services.plan import request_plan


@login_required
def request_objects(request: HttpRequest, pk) -> HttpResponse:
    """The objects a request applies, one by one (the approval queue's "objects" link). Who may see it is
    who may read `GET /api/v1/requests/{id}/plan/`: the request's team, approvers whose group decides one
    of its steps, and admins; anyone else gets the 404 of an unknown request."""
    filed = get_object_or_404(
        requests_visible_to(request.user).select_related("team__group", "parent", "parent__team"), pk=pk
    )
    objects = [
        {
            "kind": o.get("kind", ""),
            "api_version": o.get("apiVersion", ""),
            "name": o.get("metadata", {}).get("name", ""),
            "namespace": o.get("metadata", {}).get("namespace", ""),
            "yaml": yaml.safe_dump(o, sort_keys=False),
        }
        for o in request_plan(request=filed)
    ]
    return render(
        request,
        "provisioning/request_objects.html",
        {"req": filed, "objects": objects, "summary": request_summary(filed)},
    )
