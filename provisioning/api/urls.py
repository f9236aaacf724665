"""API routes of the provisioning app: the plan of a request (filed or not) and its progress."""

from django.urls import path

from .views import plan_preview_view, request_plan_view, request_progress_view

urlpatterns = [
    path("plan/", plan_preview_view, name="plan-preview"),
    path("requests/<uuid:pk>/plan/", request_plan_view, name="request-plan"),
    path("requests/<uuid:pk>/progress/", request_progress_view, name="request-progress"),
]
