"""Pages of the leases app: resources and their leases, the lease dashboard and the reclaim forecast."""

from django.urls import path

from . import views

urlpatterns = [
    path("resources/", views.resource_list, name="resource-list"),
    path("resources/<uuid:pk>/", views.resource_detail, name="resource-detail"),
    path("resources/<uuid:pk>/release/", views.resource_release_view, name="resource-release"),
    path("resources/<uuid:pk>/extend/", views.resource_extend_view, name="resource-extend"),
    path("resources/<uuid:pk>/restore/", views.resource_restore_view, name="resource-restore"),
    path("resources/<uuid:pk>/change/", views.app_change_view, name="app-change"),
    path("leases/", views.lease_dashboard, name="lease-dashboard"),
    path("leases/forecast/", views.reclaim_forecast, name="reclaim-forecast"),
]
