"""Who may read /metrics, and what it serves (CONTRACT.md §6: Prometheus text, `leasehold_` names,
inside the cluster only)."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from requests_app.models import ResourceRequest

from .conftest import METRICS_PORT, file_namespace

pytestmark = pytest.mark.django_db

PUBLIC_HOST = "leasehold.example.org"


@pytest.fixture
def public_site(settings):
    """The service as installed: its public name allowed, DEBUG off."""
    settings.ALLOWED_HOSTS = [PUBLIC_HOST, "localhost", "127.0.0.1", "testserver"]
    settings.DEBUG = False


def test_the_metrics_port_serves_prometheus_text_and_every_metric_of_ours_starts_with_leasehold(scrape):
    served = scrape()
    assert served.families
    ours = {name for name in served.names() if not name.startswith(("python_", "process_"))}
    assert ours and all(name.startswith("leasehold_") for name in ours), sorted(ours)
    for family in (
        "leasehold_requests",
        "leasehold_approval_queue_depth",
        "leasehold_leases",
        "leasehold_leases_expiring_7d",
        "leasehold_backups",
        "leasehold_kubernetes_api_requests",
        "leasehold_provisioning_failures",
        "leasehold_approval_step_decided_seconds",
        "leasehold_request_time_to_active_seconds",
    ):
        assert family in served.families, family
    assert served.value("leasehold_metrics_database_up") == 1


@pytest.mark.parametrize("debug", [False, True])
def test_a_request_as_the_ingress_sends_it_gets_404(client, public_site, settings, debug):
    settings.DEBUG = debug
    for path in ("/metrics", "/metrics/"):
        response = client.get(path, HTTP_HOST=PUBLIC_HOST, HTTP_X_FORWARDED_FOR="203.0.113.9", REMOTE_ADDR="10.42.0.17")
        assert response.status_code == 404, path
        assert b"leasehold_" not in response.content


def test_a_local_proxy_on_the_development_machine_does_not_open_it_either(client, public_site, settings):
    """A reverse proxy on the same host connects from loopback, but says whom it forwards."""
    settings.DEBUG = True
    response = client.get(
        "/metrics", HTTP_HOST=PUBLIC_HOST, HTTP_X_FORWARDED_FOR="203.0.113.9", REMOTE_ADDR="127.0.0.1"
    )
    assert response.status_code == 404


def test_the_development_server_answers_on_its_own_port_to_a_local_client_with_debug(client, public_site, settings):
    settings.DEBUG = True
    response = client.get("/metrics", REMOTE_ADDR="127.0.0.1")
    assert response.status_code == 200
    assert b"leasehold_requests" in response.content
    settings.DEBUG = False
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 404


def test_the_metrics_port_serves_nothing_but_metrics(client, public_site, admin_user):
    client.force_login(admin_user)
    for path in ("/", "/api/v1/me/", "/admin/", "/healthz", "/metrics/"):
        assert client.get(path, SERVER_PORT=METRICS_PORT, HTTP_HOST=PUBLIC_HOST).status_code == 404, path
    assert client.post("/metrics", SERVER_PORT=METRICS_PORT).status_code == 404


def test_prometheus_scrapes_by_pod_address_over_plain_http_without_a_redirect(client, settings):
    """The pod's address is in no ALLOWED_HOSTS and the scrape is plain HTTP: neither gets in the way."""
    settings.SECURE_SSL_REDIRECT = True
    response = client.get("/metrics", SERVER_PORT=METRICS_PORT, HTTP_HOST="10.42.0.17:9100")
    assert response.status_code == 200


def test_a_scrape_costs_the_same_queries_with_many_requests_in_the_database(scrape, requester, approver):
    def queries() -> int:
        with CaptureQueriesContext(connection) as ctx:
            scrape()
        return len(ctx.captured_queries)

    file_namespace(requester, name="one")
    few = queries()
    for n in range(20):
        file_namespace(requester, name=f"n{n}", environment="prod")
    assert ResourceRequest.objects.count() == 21
    assert queries() == few
