from django.contrib import admin
from django.http import HttpRequest, HttpResponseRedirect
from django.templatetags.static import static
from django.urls import URLPattern, URLResolver, include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.routers import DefaultRouter

from accounts.api.views import LogoutView, ObtainTokenView
from approvals.api.views import ApprovalViewSet
from leases.api.views import ResourceViewSet
from requests_app.api.views import RequestViewSet, catalog_view, me

from .health import healthz, readyz

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


def favicon(request: HttpRequest) -> HttpResponseRedirect:
    """Browsers ask for /favicon.ico whatever the page links: send them to the site's icon."""
    return HttpResponseRedirect(static("leasehold/favicon.svg"))


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
