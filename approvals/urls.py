"""Pages of the approvals app: the queue and deciding a step."""

from django.urls import path

from . import views

urlpatterns = [
    path("approvals/", views.queue, name="approval-queue"),
    path("approvals/<uuid:pk>/decide/", views.decide, name="approval-decide"),
]
