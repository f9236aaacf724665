"""Pages of the provisioning app: the Kubernetes objects a request applies."""

from django.urls import path

from . import views

urlpatterns = [
    path("requests/<uuid:pk>/objects/", views.request_objects, name="request-objects"),
]
