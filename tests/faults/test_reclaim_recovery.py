"""Reclamation that follows the cluster and survives it failing, on real PostgreSQL, Redis, worker and beat
processes and the real Kubernetes API server (with the fault proxy in front where a test says so)."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from leases.models import Lease
from leases.services.reclaim import resource_release
from leases.services.reclaim_pass import reclaim_pass
from provisioning import cluster
from provisioning.services.provision import request_provision
from requests_app.models import ResourceRequest
from tests.integration.conftest import approve_and_provision, file_app, namespace_gone

from .conftest import wait_for
from .proxy import Rule

pytestmark = pytest.mark.django_db(transaction=True)

HOLD = "leasehold.test/hold"


def provisioned(approved_namespace) -> ResourceRequest:
    request = approved_namespace(f"r{uuid.uuid4().hex[:10]}")
    request_provision(request_id=request.pk)
    request.refresh_from_db()
    assert request.state == "active", request.error
    return request


def hold_terminating(core, name: str) -> None:
    """A finalizer of nobody's keeps the namespace in Terminating once deleted (a stuck namespace)."""
    core.patch_namespace(name, {"metadata": {"finalizers": [HOLD]}})


def let_go(core, names: list[str]) -> None:
    for name in names:
        try:
            core.patch_namespace(name, {"metadata": {"finalizers": None}})
        except ApiException as exc:
            if exc.status != 404:
                raise


def test_a_released_namespace_is_reclaimed_in_the_records_within_a_minute_of_being_gone(
    approved_namespace, celery_processes, core
):
    # Provisioned here before the worker starts: the approval's message would have the worker claim the
    # request while this test provisions it (the worker then takes the message and finds it active).
    request = provisioned(approved_namespace)
    # Default follow-up interval (LEASEHOLD_RECLAIM_FOLLOW_SECONDS, 20 s): beat and a worker as in production.
    celery_processes("worker").wait_ready()
    celery_processes("beat").wait_ready()
    namespace = request.resource

    done, _ = resource_release(resource=namespace, actor=request.requester)

    assert not done  # the namespace terminates for a few seconds: the release cannot finish at once
    wait_for(lambda: namespace_gone(core, namespace.namespace_name), timeout=60, what="the namespace to go")
    gone = time.monotonic()
    lease = Lease.objects.get(resource=namespace)
    wait_for(
        lambda: Lease.objects.filter(pk=lease.pk, state="reclaimed").exists(),
        timeout=60,
        what="the lease to be reclaimed without a pass",
    )
    followed = time.monotonic() - gone
    namespace.refresh_from_db()
    request.refresh_from_db()
    assert (namespace.state, request.state) == ("reclaimed", "reclaimed")
    print(f"namespace gone -> reclaimed in {followed:.1f}s")


def test_namespaces_stuck_terminating_never_use_up_the_cap(approved_namespace, core, settings):
    settings.RECLAIM_MAX_PER_RUN = 2
    stuck = [provisioned(approved_namespace) for _ in range(3)]
    names = [r.resource.namespace_name for r in stuck]
    try:
        for request in stuck:
            hold_terminating(core, request.resource.namespace_name)
            resource_release(resource=request.resource, actor=request.requester)
        assert Lease.objects.filter(state="reclaiming").count() == 3
        due = provisioned(approved_namespace)
        lease = Lease.objects.get(resource=due.resource)
        # As if they had come through grace earlier than the due one: first in the pass's order.
        Lease.objects.filter(state="reclaiming").update(grace_until=lease.expires_at)
        after_grace = lease.expires_at + timedelta(days=settings.LEASE_GRACE_DAYS, minutes=1)
        reclaim_pass(now=lease.expires_at + timedelta(minutes=1))  # into grace

        report = reclaim_pass(now=after_grace)

        # The due lease was started (its namespace deleted) although three stuck ones were waiting and
        # the cap is two; the stuck ones were checked, not counted, and nothing was deferred.
        assert report.deferred == []
        due_name = due.resource.namespace_name
        started = [line for line in report.in_progress + report.reclaimed if due_name in line]
        assert len(started) == 1 and "deleted " in started[0] and f"Namespace {due_name}" in started[0], report
        assert sum(any(n in line for line in report.in_progress) for n in names) == 3
        lease.refresh_from_db()
        assert lease.state in ("reclaiming", "reclaimed")
        wait_for(lambda: namespace_gone(core, due.resource.namespace_name), timeout=60, what="the due namespace")
    finally:
        let_go(core, names)


def test_a_pass_that_cannot_reach_the_cluster_records_nothing_it_did_not_do(
    approved_namespace, requester, approver, proxy, faulty_env, kube_api, monkeypatch, settings
):
    app = file_app(approve_and_provision(approved_namespace(), approver), requester, approver, replicas=2)
    apps = client.AppsV1Api(kube_api)
    lease = Lease.objects.get(resource=app)
    expired = lease.expires_at + timedelta(minutes=1)
    # The pass reaches the cluster through the proxy, which refuses every write to Deployments.
    monkeypatch.setenv("KUBECONFIG", faulty_env["KUBECONFIG"])
    settings.LEASEHOLD_CLUSTER = "kubeconfig"
    settings.LEASEHOLD_K8S_BACKOFF_SECONDS = 0.01
    cluster.reset_clients()
    refused = proxy.add(Rule("status", status=503, method="PATCH", path=r"/deployments/"))
    try:
        report = reclaim_pass(now=expired)

        assert refused.fired >= 1
        assert any("quarantine" in e and "still active" in e for e in report.errors), report.errors
        lease.refresh_from_db()
        app.refresh_from_db()
        assert (lease.state, app.state) == ("active", "active")
        assert apps.read_namespaced_deployment("shop", app.namespace_name).spec.replicas == 2
        assert lease.quarantined_replicas == {f"apps/v1/Deployment/{app.namespace_name}/shop": 2}

        proxy.clear()
        report = reclaim_pass(now=expired)

        lease.refresh_from_db()
        assert lease.state == "grace", report.errors
        assert apps.read_namespaced_deployment("shop", app.namespace_name).spec.replicas == 0
        assert lease.quarantined_replicas == {f"apps/v1/Deployment/{app.namespace_name}/shop": 2}
    finally:
        cluster.reset_clients()
