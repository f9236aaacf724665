"""A worker keeps its PostgreSQL session between tasks, and gives up one that broke (config/celery.py)."""

from __future__ import annotations

import uuid

import pytest
from django.db import connection

from requests_app.models import ResourceRequest
from tests.conftest import require_env
from tests.integration.conftest import CeleryProcess, purge_queues, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def worker_process(celery_processes) -> CeleryProcess:
    require_env("LDAP_URI")
    purge_queues()
    return celery_processes("worker").wait_ready()


def other_sessions() -> dict[int, object]:
    """The sessions on the test database other than this test's own: pid → when it started."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid, backend_start FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
        )
        return dict(cursor.fetchall())


def provisioned_by_the_worker(request: ResourceRequest) -> None:
    wait_for(
        lambda: ResourceRequest.objects.filter(pk=request.pk, state="active").exists(),
        timeout=60,
        what=f"the worker to provision {request.name}",
    )


def test_the_worker_provisions_one_request_after_another_on_one_session(worker_process, approved_namespace):
    provisioned_by_the_worker(approved_namespace(f"w{uuid.uuid4().hex[:10]}"))
    kept = other_sessions()
    assert kept, "the worker closed its database session after the task"

    provisioned_by_the_worker(approved_namespace(f"w{uuid.uuid4().hex[:10]}"))

    after = other_sessions()
    assert {pid: after.get(pid) for pid in kept} == kept, "the worker opened a new session for the second task"


def test_a_session_that_broke_between_tasks_is_replaced_before_the_next_task(worker_process, approved_namespace):
    provisioned_by_the_worker(approved_namespace(f"w{uuid.uuid4().hex[:10]}"))
    broken = other_sessions()
    assert broken
    with connection.cursor() as cursor:
        for pid in broken:
            cursor.execute("SELECT pg_terminate_backend(%s)", [pid])

    request = approved_namespace(f"w{uuid.uuid4().hex[:10]}")
    provisioned_by_the_worker(request)

    # The kept session was checked before its first use and replaced: the task ran once, without an error.
    request.refresh_from_db()
    assert request.deliveries == 1
    log = worker_process.output()
    assert "retry:" not in log and "OperationalError" not in log, log[-3000:]
