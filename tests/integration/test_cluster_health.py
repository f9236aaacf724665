"""The clusters' health check on two real control planes (provisioning/services/health.py): both answer and
their nodes' allocatable is summed; cluster B stopped is marked down with the error and since when, while
the default cluster, checked in the same call, stays up; B started again is recovered, once (one audit
event, one signal), and a check that finds nothing new records no change."""

from __future__ import annotations

import logging
import os
import shutil

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from kubernetes import client

from provisioning import cluster
from provisioning.services.health import clusters_check
from provisioning.signals import cluster_recovered
from requests_app.models import AuditEvent, Cluster, default_cluster_pk
from tests.integration.test_two_control_planes import cluster_b_client, services

pytestmark = pytest.mark.skipif(
    not os.environ.get("LEASEHOLD_K8S_B_SERVER"),
    reason="LEASEHOLD_K8S_B_SERVER is not set: start the services with "
    "`platform/with-services.sh postgres redis ldap k8s k8s-b -- ...`",
)


@pytest.fixture
def core_b():
    with cluster_b_client() as api:
        yield client.CoreV1Api(api)


@pytest.fixture
def cluster_b(db):
    """Control plane B registered as cluster `b` (its admin kubeconfig, a path only), beside `default`."""
    default_cluster_pk()
    cluster.reset_clients()
    b = Cluster.objects.create(
        name="b",
        auth="kubeconfig",
        credentials_path=os.environ["LEASEHOLD_K8S_B_KUBECONFIG"],
        environments=["dev"],
        timeout_seconds=5,
    )
    yield b
    cluster.reset_clients()


@pytest.fixture
def nodes_on_b(core_b, unique_name):
    """Two Node objects on B with an allocatable each (no kubelet runs there: the test stands in for one)."""
    names = [f"{unique_name}-1", f"{unique_name}-2"]
    for name, cpu, memory in ((names[0], "3", "8Gi"), (names[1], "1500m", "4194304Ki")):
        core_b.create_node({"metadata": {"name": name, "labels": {"leasehold-test": unique_name}}})
        status = {"capacity": {"cpu": cpu, "memory": memory}, "allocatable": {"cpu": cpu, "memory": memory}}
        core_b.patch_node_status(name, {"status": status})
    yield names
    core_b.delete_collection_node(label_selector=f"leasehold-test={unique_name}")


@pytest.fixture
def recoveries():
    """The clusters `cluster_recovered` was sent for."""
    heard: list[str] = []

    def hear(sender, cluster, **kwargs):
        heard.append(cluster.name)

    cluster_recovered.connect(hear, dispatch_uid="test-health-recoveries")
    yield heard
    cluster_recovered.disconnect(dispatch_uid="test-health-recoveries")


def events(verb: str, target: Cluster) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(verb=verb, target_type="cluster", target_id=str(target.pk)))


def test_a_check_marks_both_clusters_up_and_sums_the_allocatable_of_bs_nodes(cluster_b, core_b, nodes_on_b):
    results = {r.name: r for r in clusters_check()}
    assert sorted(results) == ["b", "default"]
    assert results["b"].healthy and results["default"].healthy
    b, default = Cluster.objects.get(name="b"), Cluster.objects.get(name="default")
    assert (b.healthy, b.unhealthy_since, b.health_detail) == (True, None, "")
    assert (b.nodes_cpu, b.nodes_memory) == ("4500m", "12Gi")  # 3 + 1.5 cores, 8Gi + 4Gi
    assert b.capacity()["cpu"] == 4.5  # admission counts on the nodes' figure when the admin gave none
    assert default.healthy is True and default.health_checked_at == b.health_checked_at  # the same check
    # Becoming known is not a change of state worth an audit event.
    assert not AuditEvent.objects.filter(verb__startswith="cluster_", target_type="cluster").exists()


def test_a_cluster_that_may_not_list_nodes_is_up_with_no_node_figures(cluster_b, core_b, unique_name, tmp_path):
    # A ServiceAccount with no rights: /readyz is public, listing nodes is forbidden.
    core_b.create_namespaced_service_account("default", {"metadata": {"name": unique_name}})
    try:
        token = core_b.create_namespaced_service_account_token(
            unique_name, "default", {"spec": {"expirationSeconds": 600}}
        ).status.token
        (tmp_path / "token").write_text(token)
        shutil.copy(os.environ["LEASEHOLD_K8S_B_CA_FILE"], tmp_path / "ca.crt")
        Cluster.objects.filter(pk=cluster_b.pk).update(
            auth="token",
            api_server=os.environ["LEASEHOLD_K8S_B_SERVER"],
            credentials_path=str(tmp_path / "token"),
            nodes_cpu="64",  # as an earlier check with more rights read it
        )
        (result,) = clusters_check(names=["b"])
        b = Cluster.objects.get(name="b")
        assert result.healthy and (b.healthy, b.nodes_cpu, b.nodes_memory) == (True, "", "")
    finally:
        core_b.delete_namespaced_service_account(unique_name, "default")


def test_a_stopped_cluster_is_marked_down_and_recovers_once_when_started(
    cluster_b, recoveries, caplog, django_capture_on_commit_callbacks
):
    caplog.set_level(logging.INFO)
    with django_capture_on_commit_callbacks(execute=True):
        clusters_check()
    services("stop", "k8s-b")
    try:
        with django_capture_on_commit_callbacks(execute=True):
            results = {r.name: r for r in clusters_check()}
        # Both checked in this one call: b down with the error, default up as before.
        assert (results["b"].healthy, results["b"].change) == (False, "unreachable")
        assert (results["default"].healthy, results["default"].change) == (True, "")
        b = Cluster.objects.get(name="b")
        assert b.healthy is False and b.unhealthy_since == b.health_checked_at
        assert "unreachable" in b.health_detail and len(b.health_detail) <= 300
        assert Cluster.objects.get(name="default").healthy is True
        went_down = b.unhealthy_since
        with django_capture_on_commit_callbacks(execute=True):
            again = {r.name: r for r in clusters_check()}
        b.refresh_from_db()
        assert (again["b"].healthy, again["b"].change) == (False, "")
        assert b.unhealthy_since == went_down and b.health_checked_at > went_down  # still down since then
        assert [e.detail for e in events("cluster_unreachable", b)] == [results["b"].detail]
        assert (events("cluster_unreachable", b)[0].actor, events("cluster_unreachable", b)[0].to_state) == (
            None,
            "unreachable",
        )
    finally:
        services("start", "k8s-b")
    with django_capture_on_commit_callbacks(execute=True):
        back = {r.name: r for r in clusters_check()}
    assert (back["b"].healthy, back["b"].change) == (True, "recovered")
    b.refresh_from_db()
    assert (b.healthy, b.unhealthy_since, b.health_detail) == (True, None, "")
    with django_capture_on_commit_callbacks(execute=True):
        clusters_check()
    assert recoveries == ["b"]  # the signal, once
    assert len(events("cluster_recovered", b)) == 1 and len(events("cluster_unreachable", b)) == 1
    assert "down since" in events("cluster_recovered", b)[0].detail
    logged = [r.getMessage() for r in caplog.records if r.name == "provisioning.services.health"]
    assert sum("is unreachable" in m for m in logged) == 1 and sum("answers again" in m for m in logged) == 1
    token = os.environ["LEASEHOLD_K8S_B_ADMIN_TOKEN"]
    assert token not in caplog.text and not AuditEvent.objects.filter(detail__contains=token).exists()


def test_a_cluster_without_its_credentials_file_is_down_with_the_path_and_never_a_credential(cluster_b, capsys):
    Cluster.objects.filter(pk=cluster_b.pk).update(credentials_path="/var/run/leasehold/gone/kubeconfig")
    call_command("check_clusters")
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == ["b", "default"]
    assert (
        lines[0].startswith("b  down since ")
        and "no credentials file at /var/run/leasehold/gone/kubeconfig" in lines[0]
    )
    assert lines[0].endswith("(unreachable)")
    assert lines[1].startswith("default  up  ")
    with pytest.raises(CommandError, match="No cluster named nowhere is registered."):
        call_command("check_clusters", "nowhere")


def test_beat_and_a_real_worker_run_the_check_on_its_schedule(celery_processes, transactional_db):
    from requests_app.models import Heartbeat
    from tests.integration.conftest import wait_for

    default_cluster_pk()
    b = Cluster.objects.create(
        name="b", auth="kubeconfig", credentials_path=os.environ["LEASEHOLD_K8S_B_KUBECONFIG"], environments=["dev"]
    )
    fast = {"LEASEHOLD_CLUSTER_CHECK_SECONDS": "1"}
    celery_processes("worker", env=fast).wait_ready()
    celery_processes("beat", env=fast).wait_ready()
    wait_for(
        lambda: Cluster.objects.filter(healthy=True).count() == 2, timeout=60, what="both clusters checked by beat"
    )
    first = Cluster.objects.get(pk=b.pk).health_checked_at
    wait_for(
        lambda: Cluster.objects.get(pk=b.pk).health_checked_at > first, timeout=30, what="a second scheduled check"
    )
    assert Heartbeat.objects.filter(task="provisioning.tasks.check_clusters").exists()
