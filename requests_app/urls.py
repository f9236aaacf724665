"""Pages of the requests app: home, the catalog, filing and following requests."""

from django.urls import path

from . import views

urlpatterns = [
    path("", views.home, name="home"),
    path("catalog/", views.catalog_page, name="catalog"),
    path("requests/", views.request_list, name="request-list"),
    path("requests/new/", views.request_new, name="request-new"),
    path("requests/preview/", views.request_preview, name="request-preview"),
    path("requests/<uuid:pk>/", views.request_detail, name="request-detail"),
    path("requests/<uuid:pk>/cancel/", views.request_cancel_view, name="request-cancel"),
    path("clusters/", views.cluster_list, name="cluster-list"),
]
