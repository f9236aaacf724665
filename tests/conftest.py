"""Personas and shared fixtures. Integration fixtures need the services that `make test` starts."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
from django.test import override_settings
from rest_framework.test import APIClient

import config.celery  # noqa: F401  (the app tasks are sent with, as manage.py and config/wsgi.py import it)
from tests.factories import UserFactory, team

# The manage.py processes tests start use the environment the test gives them, never the settings of a
# `make run` that happens to run from this checkout (manage.py's .run/env).
os.environ["LEASEHOLD_RUN_ENV"] = "off"

# Test tiers (README, "Tests"). A test needs the real services that `make test` starts, and is marked
# `integration`, when it lives in one of these directories, when it asks for one of these fixtures, or when
# it says so itself with `@pytest.mark.integration` (a need no fixture shows, e.g. PostgreSQL's locking).
# Everything else needs at most a database and runs under `make test-unit`, on SQLite, without services.
TESTS = Path(__file__).resolve().parent
INTEGRATION_DIRS = {"integration", "faults", "deploy", "browser", "image"}
INTEGRATION_FIXTURES = {
    "kube_api",  # the test cluster's API server (and core, cleanup_namespaces, approved_namespace… use it)
    "celery_processes",  # real Celery processes on Redis and PostgreSQL
    "proxy",  # the fault proxy in front of the API server
    "private_redis",
    "directory",  # the real LDAP server
    "live_server",  # a served copy of the app, for real HTTP clients and browsers
}


def pytest_collection_modifyitems(config, items):
    for item in items:
        area = Path(str(item.path)).resolve().relative_to(TESTS).parts[0]
        if area in INTEGRATION_DIRS or INTEGRATION_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(autouse=True)
def fast_password_hasher(request, settings):
    """Outside the integration tier, passwords are hashed with a fast hasher: the tests check who may log in,
    not the hasher's cost. Integration tests keep the production hashers."""
    if request.node.get_closest_marker("integration") is None:
        settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher", *settings.PASSWORD_HASHERS]


@pytest.fixture(autouse=True)
def fresh_login_throttle():
    """Every test client calls from 127.0.0.1: the token endpoint's throttle (in the shared cache)
    starts afresh in each test, as it would for a different client."""
    from django.core.cache import cache

    cache.delete("throttle_auth-token_127.0.0.1")


@pytest.fixture(scope="session", autouse=True)
def plain_http():
    """Tests call the test client and the live server over plain HTTP. Without DEBUG the service
    redirects that to HTTPS (SECURE_SSL_REDIRECT); tests/api/test_hardening.py checks that itself.
    Session-wide and first, because the live server's middleware reads the setting when it starts."""
    with override_settings(SECURE_SSL_REDIRECT=False):
        yield


@pytest.fixture
def atlas(db):
    return team("atlas")


@pytest.fixture
def zephyr(db):
    return team("zephyr")


@pytest.fixture
def requester(atlas):
    return UserFactory(username="dana", groups=["team-atlas"])


@pytest.fixture
def teammate(atlas):
    return UserFactory(username="tom", groups=["team-atlas"])


@pytest.fixture
def approver(db):
    return UserFactory(username="frank", groups=["platform-approvers"])


@pytest.fixture
def second_approver(db):
    return UserFactory(username="paula", groups=["platform-approvers"])


@pytest.fixture
def outsider(zephyr):
    return UserFactory(username="olga", groups=["team-zephyr"])


@pytest.fixture
def admin_user(db):
    return UserFactory(username="ada", is_staff=True, is_superuser=True, groups=["leasehold-admins"])


@pytest.fixture
def api():
    """An API client; `api.as_(user)` authenticates as a persona."""

    class Client(APIClient):
        def as_(self, user):
            self.force_authenticate(user)
            return self

    return Client()


@pytest.fixture
def unique_name():
    """A name no other test uses, so tests can share one Kubernetes API server."""
    return f"t{uuid.uuid4().hex[:10]}"


def namespace_body(**overrides) -> dict:
    body = {
        "kind": "namespace",
        "team": "atlas",
        "name": "checkout",
        "environment": "dev",
        "lease_days": 14,
        "justification": "load tests for checkout v2",
        "spec": {"plan": "medium"},
    }
    body.update(overrides)
    return body


def require_env(*names: str) -> None:
    missing = [n for n in names if not os.environ.get(n)]
    if missing:
        pytest.fail(
            f"{', '.join(missing)} not set: run the integration tests with `make test`, which starts the services."
        )


@pytest.fixture
def smtp_server(settings):
    """A real SMTP server on a free loopback port (tests/smtp.py), and Django's SMTP backend pointed at it."""
    from tests.smtp import MailServer

    server = MailServer().start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", server.port, 5
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
    yield server
    server.stop()


@pytest.fixture
def unreachable_smtp(settings):
    """Django's SMTP backend pointed at a loopback port where nothing listens (connection refused)."""
    from tests.smtp import free_port

    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", free_port(), 2
    return settings.EMAIL_PORT
