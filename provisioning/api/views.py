from __future__ import annotations

from django.shortcuts import get_object_or_404, render
from django_htmx.http import HttpResponseClientRefresh
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.decorators import api_view
from rest_framework.request import Request
from rest_framework.response import Response

from provisioning.api.serializers import ProgressSerializer
from provisioning.services.plan import render_request, request_plan
from provisioning.services.progress import provisioning_progress
from requests_app.api.serializers import REQUEST_BODY_EXAMPLE, RequestCreateSerializer
from requests_app.selectors import requests_visible_to
from requests_app.services import request_build

PlanSerializer = inline_serializer("Plan", {"objects": serializers.ListField(child=serializers.DictField())})


@extend_schema(responses=PlanSerializer)
@api_view(["GET"])
def request_plan_view(request: Request, pk) -> Response:
    """The Kubernetes objects the request applies (exactly what the worker renders)."""
    filed = get_object_or_404(requests_visible_to(request.user).select_related("team__group"), pk=pk)
    return Response({"objects": request_plan(request=filed)})


@extend_schema(request=RequestCreateSerializer, responses=PlanSerializer, examples=[REQUEST_BODY_EXAMPLE])
@api_view(["POST"])
def plan_preview_view(request: Request) -> Response:
    """The Kubernetes objects a request body would apply, without filing it."""
    body = RequestCreateSerializer(data=request.data)
    body.is_valid(raise_exception=True)
    unsaved = request_build(requester=request.user, **body.validated_data)
    return Response({"objects": render_request(unsaved)})


@extend_schema(responses={200: ProgressSerializer, 404: None})
@api_view(["GET"])
def request_progress_view(request: Request, pk):
    """Provisioning progress of a create request: each object applied, then readiness.

    htmx asks for the HTML card of the request page instead (`HX-Request`); once the request is no
    longer provisioning it tells the page to reload, which shows the final state.
    """
    filed = get_object_or_404(requests_visible_to(request.user).select_related("team"), pk=pk)
    progress = provisioning_progress(filed)
    if progress is None:
        return Response({"detail": "This request has no provisioning."}, status=404)
    if request.headers.get("HX-Request"):
        if not progress["live"] and request.GET.get("polling"):
            return HttpResponseClientRefresh()
        return render(request._request, "provisioning/_progress.html", {"req": filed, "progress": progress})
    return Response(ProgressSerializer(progress).data)
