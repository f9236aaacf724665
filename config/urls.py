from django.contrib import admin
from django.contrib.staticfiles import finders
from django.contrib.staticfiles.storage import staticfiles_storage
from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern, URLResolver, include, path
from django.views.decorators.cache import cache_control
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.routers import DefaultRouter

from accounts.api.views import LogoutView, ObtainTokenView
from approvals.api.views import ApprovalViewSet
from leases.api.views import ResourceViewSet
from requests_app.api.views import RequestViewSet, catalog_view, me

from .health import healthz, readyz

# The admin is installed as config.admin_app.AdminConfig (a SimpleAdminConfig): its ModelAdmins are
# registered here, by the URLconf that serves them, not by django.setup() in every process.
admin.autodiscover()

router = DefaultRouter()
router.register("requests", RequestViewSet, basename="request")
router.register("approvals", ApprovalViewSet, basename="approval")
router.register("resources", ResourceViewSet, basename="resource")

api_v1: list[URLPattern | URLResolver] = [
    path("auth/token/", ObtainTokenView.as_view(), name="auth-token"),
    path("auth/logout/", LogoutView.as_view(), name="auth-logout"),
    path("me/", me, name="me"),
    path("catalog/", catalog_view, name="catalog"),
    path("", include("provisioning.api.urls")),
    path("", include(router.urls)),
]


FAVICON = "leasehold/favicon.svg"


@cache_control(max_age=86400, public=True)
def favicon(request: HttpRequest) -> HttpResponse:
    """Browsers ask for /favicon.ico whatever the page links: the site's icon (an SVG, which they take)."""
    found = finders.find(FAVICON)
    if isinstance(found, str):
        with open(found, "rb") as icon:
            return HttpResponse(icon.read(), content_type="image/svg+xml")
    with staticfiles_storage.open(FAVICON) as icon:  # collected (the image), when the finders have none
        return HttpResponse(icon.read(), content_type="image/svg+xml")


urlpatterns = [
    path("favicon.ico", favicon, name="favicon"),
    path("api/v1/", include(api_v1)),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # The split view serves its start-up script as a file, and the template has no inline style: CSP.
    path(
        "api/docs/",
        SpectacularSwaggerSplitView.as_view(url_name="schema", template_name="api_docs/swagger_ui.html"),
        name="api-docs",
    ),
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
    path("admin/", admin.site.urls),
    path("", include("config.web_urls")),
]
