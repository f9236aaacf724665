from django.contrib.auth import views as auth_views
from django.urls import path

from accounts.views import LoginView
from approvals import views as approval_views
from leases import views as lease_views
from provisioning import views as provisioning_views
from requests_app import views as request_views

urlpatterns = [
    path("", request_views.home, name="home"),
    path("login/", LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("catalog/", request_views.catalog_page, name="catalog"),
    path("requests/", request_views.request_list, name="request-list"),
    path("requests/new/", request_views.request_new, name="request-new"),
    path("requests/preview/", request_views.request_preview, name="request-preview"),
    path("requests/<uuid:pk>/", request_views.request_detail, name="request-detail"),
    path("requests/<uuid:pk>/cancel/", request_views.request_cancel_view, name="request-cancel"),
    path("requests/<uuid:pk>/objects/", provisioning_views.request_objects, name="request-objects"),
    path("approvals/", approval_views.queue, name="approval-queue"),
    path("approvals/<uuid:pk>/decide/", approval_views.decide, name="approval-decide"),
    path("resources/", lease_views.resource_list, name="resource-list"),
    path("resources/<uuid:pk>/", lease_views.resource_detail, name="resource-detail"),
    path("resources/<uuid:pk>/release/", lease_views.resource_release_view, name="resource-release"),
    path("resources/<uuid:pk>/extend/", lease_views.resource_extend_view, name="resource-extend"),
    path("resources/<uuid:pk>/restore/", lease_views.resource_restore_view, name="resource-restore"),
    path("resources/<uuid:pk>/change/", lease_views.app_change_view, name="app-change"),
    path("leases/", lease_views.lease_dashboard, name="lease-dashboard"),
    path("leases/forecast/", lease_views.reclaim_forecast, name="reclaim-forecast"),
]
