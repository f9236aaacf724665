"""API routes of the requests app: who the caller is, the catalog, and requests."""

from django.urls import path
from rest_framework.routers import SimpleRouter
from rest_framework.urlpatterns import format_suffix_patterns

from .views import RequestViewSet, catalog_view, clusters_view, me

# The API root (config/urls.py) lists the viewsets of every app's router.
router = SimpleRouter()
router.register("requests", RequestViewSet, basename="request")

urlpatterns = [
    path("me/", me, name="me"),
    path("catalog/", catalog_view, name="catalog"),
    path("clusters/", clusters_view, name="clusters"),
    *format_suffix_patterns(router.urls),
]
