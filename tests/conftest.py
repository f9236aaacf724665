"""Personas and shared fixtures. Integration fixtures need the services that `make test` starts."""

from __future__ import annotations

import os
import uuid

import pytest
from django.test import override_settings
from rest_framework.test import APIClient

from tests.factories import UserFactory, team


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
