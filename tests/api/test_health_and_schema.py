import pytest
import yaml
from django.test import Client, override_settings

pytestmark = pytest.mark.django_db


def test_healthz_answers_without_login(client: Client):
    response = client.get("/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


def test_readyz_checks_the_database_and_the_broker_when_configured(client: Client, settings):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["checks"]["database"] == "ok"
    assert ("broker" in response.json()["checks"]) == bool(settings.REDIS_URL)


@override_settings(REDIS_URL="redis://127.0.0.1:1/0")
def test_readyz_is_503_when_the_broker_is_down(client: Client):
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["broker"].startswith("error")


def test_the_openapi_schema_describes_every_contract_endpoint(client: Client):
    response = client.get("/api/schema/")
    assert response.status_code == 200
    paths = yaml.safe_load(response.content)["paths"]
    for path in [
        "/api/v1/auth/token/",
        "/api/v1/me/",
        "/api/v1/requests/",
        "/api/v1/requests/{id}/",
        "/api/v1/requests/{id}/cancel/",
        "/api/v1/requests/{id}/plan/",
        "/api/v1/plan/",
        "/api/v1/approvals/",
        "/api/v1/approvals/{id}/approve/",
        "/api/v1/approvals/{id}/reject/",
        "/api/v1/resources/",
        "/api/v1/resources/{id}/",
        "/api/v1/resources/{id}/release/",
    ]:
        assert path in paths, path
    assert client.get("/api/docs/").status_code == 200
