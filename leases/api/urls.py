"""API routes of the leases app: resources, their leases and what their owners do with them."""

from rest_framework.routers import SimpleRouter
from rest_framework.urlpatterns import format_suffix_patterns

from .views import ResourceViewSet

# The API root (config/urls.py) lists the viewsets of every app's router.
router = SimpleRouter()
router.register("resources", ResourceViewSet, basename="resource")

urlpatterns = format_suffix_patterns(router.urls)
