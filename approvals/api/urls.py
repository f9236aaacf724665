"""API routes of the approvals app: the caller's queue, decisions and delegations."""

from rest_framework.routers import SimpleRouter
from rest_framework.urlpatterns import format_suffix_patterns

from .views import ApprovalViewSet

# The API root (config/urls.py) lists the viewsets of every app's router.
router = SimpleRouter()
router.register("approvals", ApprovalViewSet, basename="approval")

urlpatterns = format_suffix_patterns(router.urls)
