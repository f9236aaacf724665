"""Concurrent decisions on PostgreSQL: real connections in threads, released together by a barrier.

Two approvers deciding the last step at once produce one transition and one provisioning task, and the
loser gets a 409; approve against cancel ends in one consistent state.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from celery.signals import before_task_publish
from django.db import connection, connections

from approvals.models import Decision
from approvals.services import step_decide
from requests_app.errors import LeaseholdError
from requests_app.models import AuditEvent, ResourceRequest
from requests_app.services import request_cancel
from tests.conftest import require_env

from .conftest import pending_step

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]
ROUNDS = 5


@pytest.fixture(autouse=True)
def on_postgresql():
    require_env("DATABASE_URL", "REDIS_URL")
    assert connection.vendor == "postgresql", "races are only meaningful on PostgreSQL's row locks"


@pytest.fixture
def provisioning_enqueued():
    """The provisioning tasks actually published to the broker, by request id."""
    published: list[str] = []

    def count(sender=None, body=None, **kwargs):
        if sender == "provisioning.tasks.provision_request":
            args = body[0] if isinstance(body, tuple) else body.get("args", [])
            published.append(str(args[0]))

    before_task_publish.connect(count, weak=False)
    yield published
    before_task_publish.disconnect(count)
    from tests.integration.conftest import purge_queues

    purge_queues()  # nobody consumes them here; leave the test broker empty


def race(*actions: Callable[[], object]) -> list[object]:
    """Run the actions at the same moment, each in its own thread with its own database connection;
    return what each returned or raised."""
    barrier = threading.Barrier(len(actions))
    results: list[object] = [None] * len(actions)

    def run(i: int, action: Callable[[], object]) -> None:
        try:
            barrier.wait(timeout=10)
            results[i] = action()
        except Exception as exc:  # noqa: BLE001  (the result under test)
            results[i] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i, a)) for i, a in enumerate(actions)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not any(t.is_alive() for t in threads), "a racer hung"
    return results


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_two_approvers_racing_for_the_last_approval_make_one_transition(
    file_request, approver, second_approver, provisioning_enqueued, round_
):
    request = file_request()
    step = pending_step(request)
    results = race(
        lambda: step_decide(step_id=step.pk, user=approver, verdict="approve"),
        lambda: step_decide(step_id=step.pk, user=second_approver, verdict="approve"),
    )
    errors = [r for r in results if isinstance(r, Exception)]
    assert len(errors) == 1, results
    assert isinstance(errors[0], LeaseholdError) and "nothing to decide" in str(errors[0])
    request.refresh_from_db()
    assert request.state == "approved"
    assert Decision.objects.filter(step=step).count() == 1
    assert AuditEvent.objects.filter(request=request, verb="approved").count() == 1
    assert provisioning_enqueued == [str(request.pk)]


def test_the_loser_of_a_race_gets_a_409_over_http(file_request, approver, second_approver, provisioning_enqueued):
    from rest_framework.test import APIClient

    request = file_request()
    url = f"/api/v1/approvals/{pending_step(request).pk}/approve/"

    def approve_as(user):
        client = APIClient()
        client.force_authenticate(user)
        return client.post(url, {}, format="json").status_code

    statuses = race(lambda: approve_as(approver), lambda: approve_as(second_approver))
    assert sorted(statuses) == [200, 409]
    assert provisioning_enqueued == [str(request.pk)]


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_approve_against_cancel_ends_in_one_consistent_state(
    file_request, requester, approver, provisioning_enqueued, round_
):
    request = file_request()
    step = pending_step(request)
    results = race(
        lambda: step_decide(step_id=step.pk, user=approver, verdict="approve"),
        lambda: request_cancel(request=ResourceRequest.objects.get(pk=request.pk), actor=requester),
    )
    assert sum(isinstance(r, Exception) for r in results) == 1, results
    request.refresh_from_db()
    step.refresh_from_db()
    verbs = set(AuditEvent.objects.filter(request=request).values_list("verb", flat=True))
    if request.state == "approved":
        assert step.state == "approved" and "cancelled" not in verbs
        assert provisioning_enqueued == [str(request.pk)]
    else:
        assert request.state == "cancelled"
        assert step.state == "skipped" and "approved" not in verbs
        assert not Decision.objects.filter(step=step).exists()
        assert provisioning_enqueued == []


def test_a_quorum_step_reached_by_two_concurrent_approvals_counts_both(
    load, file_request, approver, second_approver, provisioning_enqueued
):
    load("rules:\n- {name: q, steps: [{name: platform, group: platform-approvers, required: 2}]}\n")
    request = file_request()
    step = pending_step(request)
    results = race(
        lambda: step_decide(step_id=step.pk, user=approver, verdict="approve"),
        lambda: step_decide(step_id=step.pk, user=second_approver, verdict="approve"),
    )
    assert not any(isinstance(r, Exception) for r in results), results
    request.refresh_from_db()
    assert request.state == "approved"
    assert AuditEvent.objects.filter(request=request, verb="step_closed", to_state="approved").count() == 1
    assert provisioning_enqueued == [str(request.pk)]
