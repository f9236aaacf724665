"""A pass checks that the cluster is usable before it changes anything, so that no lease reaches a state
the cluster does not match: on real PostgreSQL and the real API server, with the fault proxy in front."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from kubernetes import client

from leases.models import Lease, ReclaimPass
from leases.services.reclaim_pass import reclaim_pass
from provisioning import cluster
from provisioning.errors import ClusterNotConfigured
from tests.integration.conftest import approve_and_provision, file_app

from .proxy import Rule

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def namespace_and_app(approved_namespace, requester, approver):
    """A namespace (no workloads of its own) and an app with two replicas in it, both provisioned."""
    app = file_app(approve_and_provision(approved_namespace(), approver), requester, approver, replicas=2)
    return app.parent, app


def states(*resources) -> list[tuple[str, str]]:
    out = []
    for resource in resources:
        resource.refresh_from_db()
        out.append((Lease.objects.get(resource=resource).state, resource.state))
    return out


def test_a_pass_whose_api_server_does_not_answer_moves_nothing_into_grace(
    namespace_and_app, proxy, faulty_env, kube_api, monkeypatch, settings
):
    namespace, app = namespace_and_app
    expired = max(Lease.objects.filter(resource__in=[namespace, app]).values_list("expires_at", flat=True))
    monkeypatch.setenv("KUBECONFIG", faulty_env["KUBECONFIG"])
    settings.LEASEHOLD_CLUSTER = "kubeconfig"
    cluster.reset_clients()
    down = proxy.add(Rule("reset"))  # every connection to the API server is reset
    try:
        report = reclaim_pass(now=expired + timedelta(minutes=1))

        assert down.fired == 1  # the readiness check, and nothing after it
        assert [e for e in report.errors if e.startswith("cluster default: ")], report.errors
        assert report.to_grace == []
        # The namespace has no workload to scale: without the check it went into grace unasked.
        assert states(namespace, app) == [("active", "active"), ("active", "active")]
        apps = client.AppsV1Api(kube_api)
        assert apps.read_namespaced_deployment("shop", app.namespace_name).spec.replicas == 2

        proxy.clear()
        report = reclaim_pass(now=expired + timedelta(minutes=1))

        assert report.errors == [] and len(report.to_grace) == 2, report.lines()
        assert states(namespace, app) == [("grace", "grace"), ("grace", "grace")]
        assert apps.read_namespaced_deployment("shop", app.namespace_name).spec.replicas == 0
    finally:
        cluster.reset_clients()


def test_a_pass_without_cluster_credentials_stops_before_changing_anything(namespace_and_app, settings, tmp_path):
    namespace, app = namespace_and_app
    expired = max(Lease.objects.filter(resource__in=[namespace, app]).values_list("expires_at", flat=True))
    settings.LEASEHOLD_CLUSTER = "local"
    settings.LEASEHOLD_LOCAL_KUBECONFIG = str(tmp_path / "kubeconfig")  # what a second terminal found
    cluster.reset_clients()
    try:
        with pytest.raises(ClusterNotConfigured):
            reclaim_pass(now=expired + timedelta(minutes=1))
        with pytest.raises(CommandError, match=r"does not exist.*Nothing was changed"):
            call_command("reclaim_leases", now=(expired + timedelta(minutes=1)).isoformat())

        assert states(namespace, app) == [("active", "active"), ("active", "active")]
        assert ReclaimPass.objects.filter(completed=True).count() == 0
        assert ReclaimPass.objects.filter(completed=False).count() == 1
    finally:
        cluster.reset_clients()
