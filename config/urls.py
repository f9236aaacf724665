"""The site's URLs: each app's pages (`<app>/urls.py`) and API routes (`<app>/api/urls.py`), and the
project's own (the favicon, the API schema and docs, health checks, the admin).

Names are not namespaced and some are shared by a page and an API route (`request-list`, `catalog`):
`reverse()` gives the one included last, so the pages come after the API. tests/unit/test_url_map.py pins
every route, name, resolution and reverse.
"""

from django.contrib import admin
from django.contrib.staticfiles import finders
from django.contrib.staticfiles.storage import staticfiles_storage
from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern, URLResolver, include, path
from django.views.decorators.cache import cache_control
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.routers import DefaultRouter
from rest_framework.urlpatterns import format_suffix_patterns

from approvals.api import urls as approvals_api
from leases.api import urls as leases_api
from requests_app.api import urls as requests_api

from .health import healthz, readyz

# The admin is installed as config.admin_app.AdminConfig (a SimpleAdminConfig): its ModelAdmins are
# registered here, by the URLconf that serves them, not by django.setup() in every process.
admin.autodiscover()

# The browsable API's root lists the viewsets that the apps' routers register (their routes come with
# the apps' `api/urls.py`).
api_root = DefaultRouter()
for app_router in (requests_api.router, approvals_api.router, leases_api.router):
    api_root.registry.extend(app_router.registry)

API_APPS = ("accounts", "requests_app", "provisioning", "approvals", "leases")
WEB_APPS = ("requests_app", "accounts", "provisioning", "approvals", "leases")

api_v1: list[URLPattern | URLResolver] = [
    *(path("", include(f"{app}.api.urls")) for app in API_APPS),
    *format_suffix_patterns([path("", api_root.get_api_root_view(), name=api_root.root_view_name)]),
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
    *(path("", include(f"{app}.urls")) for app in WEB_APPS),
]
