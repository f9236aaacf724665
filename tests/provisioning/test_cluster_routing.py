"""Provisioning work is published on its cluster's queue (`cluster.<name>`) with the cluster's id, and a run
goes to the request's own cluster whatever the message says; a message for a request or a cluster that is
gone ends quietly."""

from __future__ import annotations

import uuid

import pytest
from celery.signals import before_task_publish

from provisioning import cluster
from provisioning.queues import served_clusters
from provisioning.services.provision import ProvisionOutcome, request_provision
from provisioning.services.retries import provisioning_retry_later, request_fail
from provisioning.services.sweep import CLUSTER_ID_HEADER
from provisioning.tasks import provision_request
from requests_app.models import Cluster, ClusterAuth, default_cluster_pk
from tests.integration.conftest import require_env

pytestmark = pytest.mark.django_db


@pytest.fixture
def published():
    """(routing key, our cluster header) of the provisioning tasks published to the broker."""
    seen: list[tuple[str, object]] = []

    def keep(sender=None, headers=None, routing_key=None, **kwargs):
        if sender == "provisioning.tasks.provision_request":
            seen.append((routing_key, (headers or {}).get(CLUSTER_ID_HEADER)))

    before_task_publish.connect(keep, weak=False)
    yield seen
    before_task_publish.disconnect(keep)
    from tests.integration.conftest import purge_queues

    purge_queues()


@pytest.fixture
def unreachable_b():
    """A registered cluster `b` for test requests, whose API server nothing listens on (nothing may be sent
    there); dev requests are placed on `default`."""
    row = Cluster.objects.create(
        name="b",
        auth=ClusterAuth.TOKEN,
        api_server="https://127.0.0.1:9",
        credentials_path="/nonexistent/b/token",
        environments=["test"],
    )
    yield row
    cluster.reset_clients()


def test_an_approved_request_is_published_on_its_clusters_queue_with_its_id(
    approved_namespace, published, django_capture_on_commit_callbacks
):
    require_env("REDIS_URL")
    with django_capture_on_commit_callbacks(execute=True):
        request = approved_namespace()
    assert published == [("cluster.default", default_cluster_pk())]
    assert request.cluster_id == default_cluster_pk()


def test_a_run_told_the_wrong_cluster_provisions_on_the_requests_own(approved_namespace, unreachable_b):
    request = approved_namespace()
    assert request.cluster.name == "default"
    # A message naming `b` (say, from a cluster that was renamed meanwhile): the claim checks the request's
    # cluster under its lock before any call, and the run goes to `default`, where the request is.
    provision_request.apply(args=[str(request.pk)], headers={CLUSTER_ID_HEADER: unreachable_b.pk})
    request.refresh_from_db()
    assert request.state == "active", request.error


def test_a_message_for_a_request_or_cluster_that_is_gone_ends_quietly():
    gone = uuid.uuid4()
    assert request_provision(request_id=gone, cluster_id=987654) == ProvisionOutcome()
    assert request_fail(request_id=gone, reason="x") is None
    assert provisioning_retry_later(request_id=gone, error=ValueError("x")) is None


def test_a_worker_serves_the_clusters_it_is_told_and_every_one_for_a_star():
    assert served_clusters("*", ["b", "a"]) == ["a", "b", "default"]
    assert served_clusters("b, c", ["a", "b"]) == ["b", "c"]
    assert served_clusters("", ["a"]) == []


def test_a_request_on_a_cluster_known_down_waits_visibly_without_an_attempt(
    requester, approver, unreachable_b, client, api
):
    from datetime import timedelta

    from django.utils import timezone

    from approvals.services import step_decide
    from provisioning.models import Phase, ProvisioningJob
    from provisioning.services.sweep import provisioning_sweep
    from requests_app.models import AuditEvent
    from requests_app.services import request_submit

    since = timezone.now() - timedelta(minutes=3)
    Cluster.objects.filter(pk=unreachable_b.pk).update(
        healthy=False, unhealthy_since=since, health_detail="connection refused"
    )
    request = request_submit(
        requester=requester,
        team="atlas",
        kind="namespace",
        name="waits",
        environment="test",
        lease_days=7,
        justification="t",
        spec={"plan": "small"},
        cluster="b",
    )
    for step in request.approval_steps.all():
        step_decide(step_id=step.pk, user=approver, verdict="approve")
    for _ in range(2):  # delivered twice: one wait, audited once
        assert request_provision(request_id=request.pk, cluster_id=unreachable_b.pk) == ProvisionOutcome()
    request.refresh_from_db()
    job = ProvisioningJob.objects.get(pk=request.pk)
    assert (request.state, request.deliveries, job.phase) == ("approved", 0, Phase.WAITING_CLUSTER)
    assert job.last_error == f"cluster b does not answer since {since:%Y-%m-%d %H:%M} UTC: connection refused"
    assert AuditEvent.objects.filter(request=request, verb="waiting_for_cluster").count() == 1
    # Its requester sees why, on its page and in the API.
    client.force_login(requester)
    page = client.get(f"/requests/{request.pk}/").content.decode()
    assert "Waiting for its cluster to answer" in page and "cluster b does not answer since" in page
    api.force_authenticate(requester)
    progress = api.get(f"/api/v1/requests/{request.pk}/progress/").json()
    assert (progress["phase"], progress["note"]) == ("waiting_cluster", job.last_error)
    # Long past the sweep's cutoff, a cluster known down is still not swept: its requests wait for it.
    ProvisioningJob.objects.filter(pk=request.pk).update(enqueued_at=timezone.now() - timedelta(hours=1))
    assert str(request.pk) not in provisioning_sweep()


@pytest.mark.integration  # publishes to the broker: needs Redis (make test starts it)
def test_lease_work_is_published_on_its_clusters_queue(unreachable_b):
    """Extensions and restores call their resource's cluster: they go to its queue."""
    require_env("REDIS_URL")
    from leases.services.extension import publish
    from leases.tasks import fulfil_extension, start_restore

    seen: list[tuple[str, str]] = []

    def keep(sender=None, routing_key=None, **kwargs):
        seen.append((sender, routing_key))

    before_task_publish.connect(keep, weak=False)
    try:
        publish(fulfil_extension, str(uuid.uuid4()), cluster_id=unreachable_b.pk)
        publish(start_restore, str(uuid.uuid4()), cluster_id=default_cluster_pk())
    finally:
        before_task_publish.disconnect(keep)
        from tests.integration.conftest import purge_queues

        purge_queues()
    assert seen == [("leases.tasks.fulfil_extension", "cluster.b"), ("leases.tasks.start_restore", "cluster.default")]


def test_a_reclaimed_namespace_is_restored_on_its_own_cluster_or_not_at_all(unreachable_b):
    from leases.services.restore import resource_restore
    from requests_app.errors import ValidationFailed
    from tests.factories import ResourceFactory

    # b has committed part of its capacity and `default` nothing: placement alone would choose `default`.
    Cluster.objects.filter(pk=unreachable_b.pk).update(allocatable_cpu="64")
    ResourceFactory(state="active", cluster=unreachable_b, environment="test")
    gone = ResourceFactory(state="reclaimed", cluster=unreachable_b, environment="test")
    from requests_app.clusters import place
    from requests_app.specs import Usage

    assert place(environment="test", asked=Usage(), name=None).name == "default"
    restored = resource_restore(resource=gone, actor=gone.owner)
    assert restored.cluster_id == unreachable_b.pk
    other = ResourceFactory(state="reclaimed", cluster=unreachable_b, environment="test")
    Cluster.objects.filter(pk=unreachable_b.pk).update(accepting=False)
    with pytest.raises(ValidationFailed) as refused:
        resource_restore(resource=other, actor=other.owner)
    assert refused.value.errors == {"cluster": ["Cluster b does not take new requests."]}
