"""The Celery worker serves its own /metrics: its main process answers for every pool process, whose
counters it reads from PROMETHEUS_MULTIPROC_DIR (prometheus-client's multiprocess mode)."""

from __future__ import annotations

import urllib.request

import pytest
from django.db import connection

from approvals.services import step_decide
from requests_app.models import ResourceRequest
from tests.integration.conftest import wait_for
from tests.smtp import free_port

from .conftest import Scrape, file_namespace

pytestmark = pytest.mark.integration


def scrape_worker(port: int) -> Scrape | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:  # noqa: S310
            return Scrape(answer.read().decode())
    except OSError:
        return None


def test_a_prefork_worker_serves_the_counters_of_its_pool_processes(
    celery_processes, requester, approver, cleanup_namespaces, unique_name, tmp_path
):
    shared = tmp_path / "prometheus"
    shared.mkdir()
    (shared / "counter_999999.db").write_bytes(b"stale")  # left by a run before a restart
    port = free_port()
    worker = celery_processes(
        "worker",
        env={
            "PROMETHEUS_MULTIPROC_DIR": str(shared),
            "LEASEHOLD_METRICS_PORT": str(port),
            "LEASEHOLD_METRICS_ADDRESS": "127.0.0.1",
        },
        args=("--pool=prefork", "--concurrency=2"),
    ).wait_ready()
    assert not (shared / "counter_999999.db").exists()
    idle = wait_for(lambda: scrape_worker(port), what="the worker's metrics")
    assert idle.value("leasehold_kubernetes_api_requests_total", verb="apply") == 0

    cleanup_namespaces.append(f"atlas-{unique_name}")
    request = file_namespace(requester, name=unique_name)
    step_decide(step_id=request.approval_steps.get().pk, user=approver, verdict="approve")

    def active() -> bool:
        connection.close()  # a fresh read of what the worker committed
        return ResourceRequest.objects.get(pk=request.pk).state == "active"

    wait_for(active, timeout=90, what="the worker to provision the namespace")
    served = scrape_worker(port)
    assert served is not None
    assert served.value("leasehold_kubernetes_api_requests_total", verb="apply") >= 5
    assert served.value("leasehold_provisioning_attempts_total") >= 1
    assert served.value("leasehold_request_time_to_active_seconds_count", kind="namespace", action="create") == 1
    # The pool processes wrote the figures (the main process runs no task), and the main process read them.
    children = {p.name.split("_")[-1] for p in shared.glob("*.db")}
    assert children and str(worker.pid) not in {c.removesuffix(".db") for c in children}
    assert "leasehold_requests" not in served.families  # the database's figures are the web's
