"""Fixtures for the approval engine's tests: more personas, filing helpers, policies."""

from __future__ import annotations

import datetime

import pytest
from django.utils import timezone

from approvals.models import ApprovalStep
from approvals.services import policy_load
from requests_app.models import ResourceRequest
from requests_app.services import request_submit
from tests.factories import UserFactory


@pytest.fixture(autouse=True)
def groups_from_django(settings):
    """These tests give personas groups with the factory, so the Django groups are the directory here.
    Tests of the LDAP path ask for `directory` instead, which puts the real LDAP backend back."""
    settings.AUTHENTICATION_BACKENDS = ["django.contrib.auth.backends.ModelBackend"]


@pytest.fixture
def lead(atlas):
    return UserFactory(username="lena", groups=["team-atlas", "team-atlas-leads"])


@pytest.fixture
def security(db):
    return UserFactory(username="sam", groups=["security-approvers", "team-zephyr"])


@pytest.fixture
def second_security(db):
    return UserFactory(username="sasha", groups=["security-approvers"])


@pytest.fixture
def platform_lead(db):
    """An escalation target: heads the platform team."""
    return UserFactory(username="pete", groups=["platform-leads"])


@pytest.fixture
def file_request(requester):
    """File a request through the service; keyword overrides change the namespace body."""

    counter = iter(range(10_000))

    def file(*, by=None, **overrides) -> ResourceRequest:
        fields = {
            "team": "atlas",
            "kind": "namespace",
            "name": f"svc{next(counter)}",
            "environment": "dev",
            "lease_days": 14,
            "justification": "tests",
            "spec": {"plan": "medium"},
        }
        fields.update(overrides)
        return request_submit(requester=by or requester, **fields)

    return file


@pytest.fixture
def load():
    """Put a YAML policy in force (as an admin would, through the service)."""

    def load_policy(source: str, actor=None):
        return policy_load(source=source, origin="test", actor=actor)[0]

    return load_policy


def steps_of(request: ResourceRequest) -> list[tuple[str, str, int, str]]:
    return [(s.name, s.group, s.required, s.state) for s in request.approval_steps.order_by("order")]


def pending_step(request: ResourceRequest) -> ApprovalStep:
    return request.approval_steps.get(state="pending")


def age_step(step: ApprovalStep, hours: float, *, now: datetime.datetime | None = None) -> datetime.datetime:
    """Make `step` look opened `hours` ago; returns the `now` it is measured against."""
    now = now or timezone.now()
    ApprovalStep.objects.filter(pk=step.pk).update(pending_since=now - datetime.timedelta(hours=hours))
    return now
