"""Many clusters, one portal (issue 16), on two real control planes and real worker processes: requests land
on their own cluster and nothing on the other; with one control plane stopped, requests for the other are
provisioned while the stopped cluster's wait, visibly, and finish once it is back: nothing lost, nothing
duplicated."""

from __future__ import annotations

import os

import pytest
from kubernetes import client

from provisioning import cluster
from provisioning.models import ManagedObject, Phase, ProvisioningJob
from provisioning.services.health import clusters_check
from provisioning.services.sweep import provisioning_resume, provisioning_sweep
from requests_app.models import AuditEvent, Cluster, ClusterAuth, ResourceRequest, default_cluster_pk
from tests.integration.conftest import namespace_gone, purge_queues, wait_for
from tests.integration.test_two_control_planes import cluster_b_client, services

pytestmark = [
    pytest.mark.skipif(
        not os.environ.get("LEASEHOLD_K8S_B_SERVER"),
        reason="the second control plane is not running (`platform/with-services.sh ... k8s k8s-b -- ...`)",
    ),
    pytest.mark.django_db(transaction=True),
]


@pytest.fixture
def cluster_b(db):
    """Cluster `b`: the second control plane, registered with its kubeconfig (as a mounted Secret would be).
    `default` (the migration makes it; a transactional test's flush removed it) is the first control plane."""
    default_cluster_pk()
    row = Cluster.objects.create(
        name="b",
        auth=ClusterAuth.KUBECONFIG,
        credentials_path=os.environ["LEASEHOLD_K8S_B_KUBECONFIG"],
        environments=["dev", "test"],
        timeout_seconds=5,
    )
    yield row
    cluster.reset_clients()


@pytest.fixture
def core_b():
    with cluster_b_client() as api:
        yield client.CoreV1Api(api)


@pytest.fixture
def file_namespace(approved_namespace):
    """File and approve a namespace request on the cluster named (the approval enqueues it)."""

    def make(name: str, on: str) -> ResourceRequest:
        return approved_namespace(name, plan="small", cluster=on)

    return make


def state_of(request: ResourceRequest) -> str:
    return ResourceRequest.objects.values_list("state", flat=True).get(pk=request.pk)


def test_requests_land_on_their_own_cluster_and_nothing_on_the_other(
    cluster_b, core, core_b, file_namespace, celery_processes, unique_name
):
    purge_queues()
    celery_processes("worker").wait_ready()
    on_a = file_namespace(f"{unique_name}-a", "default")
    on_b = file_namespace(f"{unique_name}-b", "b")
    wait_for(lambda: state_of(on_a) == "active" and state_of(on_b) == "active", what="both requests active")
    try:
        assert core.read_namespace(f"atlas-{unique_name}-a")
        assert namespace_gone(core_b, f"atlas-{unique_name}-a")
        assert core_b.read_namespace(f"atlas-{unique_name}-b").metadata.labels["app.kubernetes.io/managed-by"]
        assert namespace_gone(core, f"atlas-{unique_name}-b")
    finally:
        if not namespace_gone(core_b, f"atlas-{unique_name}-b"):
            core_b.delete_namespace(f"atlas-{unique_name}-b")


def test_with_cluster_b_stopped_a_is_provisioned_and_b_waits_then_finishes_once(
    cluster_b, core, core_b, file_namespace, celery_processes, unique_name
):
    purge_queues()
    celery_processes("worker").wait_ready()
    name_b = f"atlas-{unique_name}-b"
    services("stop", "k8s-b")
    try:
        on_b = file_namespace(f"{unique_name}-b", "b")
        on_a = file_namespace(f"{unique_name}-a", "default")
        # The first delivery finds b unreachable by itself (the health check has not run yet): it waits.
        wait_for(lambda: state_of(on_a) == "active", what="the request on the running cluster active")
        job = wait_for(
            lambda: ProvisioningJob.objects.filter(pk=on_b.pk, phase=Phase.WAITING_CLUSTER).first(),
            what="the request on the stopped cluster waiting for it",
        )
        on_b.refresh_from_db()
        assert on_b.state in ("approved", "provisioning")
        assert on_b.deliveries == 0, "an attempt that could not reach the cluster counted against the request"
        assert "Kubernetes API unreachable" in job.last_error
        assert AuditEvent.objects.filter(request=on_b, verb="waiting_for_cluster").count() == 1
        assert core.read_namespace(f"atlas-{unique_name}-a")
        assert namespace_gone(core, name_b), "the stopped cluster's request landed on the other"
        clusters_check()  # b is known down now: the sweep leaves its request alone
        assert Cluster.objects.get(name="b").healthy is False
        assert str(on_b.pk) not in provisioning_sweep()
    finally:
        services("start", "k8s-b")
    try:
        # The health check sees b answer again and enqueues its waiting request (a receiver of
        # cluster_recovered); a second check has nothing more to resume.
        clusters_check()
        assert Cluster.objects.get(name="b").healthy is True
        assert AuditEvent.objects.filter(request=on_b, verb="requeued").count() == 1
        assert provisioning_resume(cluster_name="b") == []
        wait_for(lambda: state_of(on_b) == "active", what="the waiting request active once its cluster is back")
        assert core_b.read_namespace(name_b)
        assert namespace_gone(core, name_b)
        resource = ResourceRequest.objects.get(pk=on_b.pk).resource
        names = list(ManagedObject.objects.filter(resource=resource).values_list("kind", "namespace", "name"))
        assert len(names) == len(set(names)) and names, "an object was recorded twice"
        for verb in ("provisioning_started", "activated"):  # the same trail as the request that never waited
            assert AuditEvent.objects.filter(request=on_b, verb=verb).count() == (
                AuditEvent.objects.filter(request=on_a, verb=verb).count()
            ), verb
    finally:
        if not namespace_gone(core_b, name_b):
            core_b.delete_namespace(name_b)


def test_a_worker_started_for_one_cluster_takes_only_that_clusters_work(
    cluster_b, core, core_b, file_namespace, celery_processes, unique_name
):
    purge_queues()
    celery_processes("worker", env={"LEASEHOLD_WORKER_CLUSTERS": "b"}).wait_ready()
    on_a = file_namespace(f"{unique_name}-a", "default")
    on_b = file_namespace(f"{unique_name}-b", "b")
    try:
        wait_for(lambda: state_of(on_b) == "active", what="b's request active through b's worker")
        assert state_of(on_a) == "approved", "a worker for b took default's work"
        celery_processes("worker", env={"LEASEHOLD_WORKER_CLUSTERS": "default"}).wait_ready()
        wait_for(lambda: state_of(on_a) == "active", what="default's request active once its worker runs")
        assert core.read_namespace(f"atlas-{unique_name}-a")
    finally:
        if not namespace_gone(core_b, f"atlas-{unique_name}-b"):
            core_b.delete_namespace(f"atlas-{unique_name}-b")
