"""Claims, the delivery bound, the stuck-request sweep, ownership, readiness, drift and progress —
in-process against PostgreSQL and the real Kubernetes API server."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone
from kubernetes import client

from approvals.services import step_decide
from provisioning.errors import TransientClusterError
from provisioning.models import ManagedObject, Phase, ProvisioningJob
from provisioning.services.provision import request_provision
from provisioning.services.readiness import workload_unready
from provisioning.services.reconcile import DriftOutcome, resource_reconcile, resources_reconcile
from provisioning.services.retries import provisioning_retry_later, request_fail
from provisioning.services.sweep import provisioning_sweep
from requests_app.metrics import MetricUpdate
from requests_app.models import AuditEvent, ResourceRequest
from requests_app.services import request_submit

pytestmark = pytest.mark.django_db


def make_old(request, minutes=30):
    ProvisioningJob.objects.filter(pk=request.pk).update(enqueued_at=timezone.now() - timedelta(minutes=minutes))


def test_the_sweep_requeues_a_request_whose_message_was_lost_once(
    approved_namespace, django_capture_on_commit_callbacks
):
    request = approved_namespace()
    assert provisioning_sweep() == []  # just enqueued: not stuck
    make_old(request)
    with django_capture_on_commit_callbacks() as published:
        assert provisioning_sweep() == [str(request.pk)]
        assert provisioning_sweep() == []  # compare-and-set: a second sweep at once does nothing
    assert len(published) == 1
    assert AuditEvent.objects.filter(request=request, verb="requeued").count() == 1


def test_the_sweep_leaves_requests_with_a_retry_due_or_a_live_claim_alone(approved_namespace):
    waiting = approved_namespace("waiting1")
    make_old(waiting)
    ProvisioningJob.objects.filter(pk=waiting.pk).update(retry_at=timezone.now() + timedelta(seconds=30))
    held = approved_namespace("held1")  # enqueued just now
    # Held by a worker whose session is alive (this test's own connection, seen from the sweep's).
    from provisioning.services.claims import _session_identity

    ProvisioningJob.objects.filter(pk=held.pk).update(
        claimed_until=timezone.now() + timedelta(minutes=1), claimed_by=_session_identity().replace("@", "@other-")
    )
    assert provisioning_sweep() == []
    # A claim whose database session is gone is dead at once: taken by the next sweep although it was
    # enqueued just now and its claim has not run out, and only by one sweep.
    ProvisioningJob.objects.filter(pk=held.pk).update(claimed_by="pg:999999@gone:1:1")
    assert provisioning_sweep() == [str(held.pk)]
    assert provisioning_sweep() == []
    assert "is gone" in AuditEvent.objects.get(request=held, verb="requeued").detail


@override_settings(LEASEHOLD_MAX_DELIVERIES=3)
def test_a_request_that_keeps_killing_its_worker_fails_after_the_bound_with_the_reason(approved_namespace):
    request = approved_namespace()
    ResourceRequest.objects.filter(pk=request.pk).update(deliveries=3)
    ProvisioningJob.objects.filter(pk=request.pk).update(last_error="")

    request_provision(request_id=request.pk)

    request.refresh_from_db()
    assert request.state == "failed"
    assert "Stopped after 3 deliveries" in request.error
    assert "worker was lost" in request.error


@override_settings(LEASEHOLD_MAX_DELIVERIES=2)
def test_transient_errors_retry_until_the_bound_then_fail_with_the_last_error(approved_namespace):
    request = approved_namespace()
    ResourceRequest.objects.filter(pk=request.pk).update(deliveries=1)
    delay = provisioning_retry_later(request_id=request.pk, error=TransientClusterError("503 busy", retry_after=1))
    assert delay is not None and delay >= 1
    job = ProvisioningJob.objects.get(pk=request.pk)
    assert (job.phase, job.last_error) == (Phase.RETRYING, "503 busy")

    ResourceRequest.objects.filter(pk=request.pk).update(deliveries=2)
    assert provisioning_retry_later(request_id=request.pk, error=TransientClusterError("503 still busy")) is None
    request.refresh_from_db()
    assert request.state == "failed"
    assert request.error == "Gave up after 2 attempts; the last error was: 503 still busy"


def test_an_existing_namespace_of_someone_else_is_never_taken_over(approved_namespace, core):
    request = approved_namespace()
    ns_name = f"atlas-{request.name}"
    core.create_namespace({"metadata": {"name": ns_name, "labels": {"owner": "someone"}}})

    with pytest.raises(Exception) as exc:
        request_provision(request_id=request.pk)
    request_fail(request_id=request.pk, reason=str(exc.value))

    request.refresh_from_db()
    assert request.state == "failed"
    assert "already exists and does not belong to this request" in request.error
    ns = core.read_namespace(ns_name)
    assert ns.metadata.deletion_timestamp is None
    assert ns.metadata.labels.get("leasehold.io/resource") is None
    assert not ManagedObject.objects.filter(resource_id=request.resource_id, deleted_at__isnull=True).exists()


@pytest.fixture
def active_ns(approved_namespace):
    request = approved_namespace()
    request_provision(request_id=request.pk)
    request.refresh_from_db()
    assert request.state == "active"
    return request


def file_database(requester, approver, namespace_request, name="orders"):
    request = request_submit(
        requester=requester,
        team="atlas",
        kind="database",
        name=name,
        environment="dev",
        lease_days=7,
        justification="readiness",
        spec={"namespace": f"atlas-{namespace_request.name}", "version": "16", "storage": "1Gi", "plan": "small"},
    )
    for step in request.approval_steps.order_by("order"):
        step_decide(step_id=step.pk, user=approver, verdict="approve")
    request.refresh_from_db()
    return request


@override_settings(LEASEHOLD_WAIT_FOR_READY=True, LEASEHOLD_READY_TIMEOUT_SECONDS=60, LEASEHOLD_READY_POLL_SECONDS=5)
def test_with_readiness_on_a_database_waits_for_its_statefulset(active_ns, requester, approver, kube_api):
    db = file_database(requester, approver, active_ns)
    outcome = request_provision(request_id=db.pk)
    db.refresh_from_db()
    assert (outcome.retry_in, db.state) == (5, "provisioning")
    job = ProvisioningJob.objects.get(pk=db.pk)
    assert job.phase == Phase.READINESS
    assert job.last_error.startswith(f"waiting for: StatefulSet atlas-{active_ns.name}/orders: ")
    # Everything else it applied is marked ready with the applies; the StatefulSet is not.
    rows = ManagedObject.objects.filter(resource_id=db.resource_id)
    assert rows.filter(applied_at__isnull=True).count() == 0
    assert list(rows.filter(ready_at__isnull=True).values_list("kind", flat=True)) == ["StatefulSet"]
    assert rows.filter(ready_at__isnull=False).count() == rows.count() - 1 > 0

    # The local control plane has no kubelet, so the StatefulSet never gets there; a second check waits
    # again without counting as a delivery.
    assert request_provision(request_id=db.pk).retry_in == 5
    db.refresh_from_db()
    assert (db.state, db.deliveries) == ("provisioning", 1)


def test_a_workload_is_available_once_its_replicas_are_and_its_spec_is_observed():
    sts = {"kind": "StatefulSet", "metadata": {"generation": 2}, "spec": {"replicas": 2}}
    assert workload_unready(None) == "does not exist"
    assert workload_unready({**sts, "status": {"observedGeneration": 1, "readyReplicas": 2}}).startswith("its latest")
    half = workload_unready({**sts, "status": {"observedGeneration": 2, "readyReplicas": 1}})
    assert half == "1/2 replicas available"
    assert workload_unready({**sts, "status": {"observedGeneration": 2, "readyReplicas": 2}}) == ""
    deployment = {"kind": "Deployment", "metadata": {"generation": 1}, "spec": {"replicas": 3}}
    assert workload_unready({**deployment, "status": {"observedGeneration": 1, "availableReplicas": 3}}) == ""
    assert workload_unready({**deployment, "spec": {"replicas": 0}, "status": {"observedGeneration": 1}}) == ""


@override_settings(LEASEHOLD_WAIT_FOR_READY=True, LEASEHOLD_READY_TIMEOUT_SECONDS=0)
def test_with_readiness_on_a_workload_that_never_becomes_available_fails_and_is_removed(
    active_ns, requester, approver, kube_api
):
    from provisioning.tasks import provision_request

    db = file_database(requester, approver, active_ns, name="stuck")
    provision_request.apply(args=[str(db.pk)])
    db.refresh_from_db()
    assert db.state == "failed"
    assert db.error.startswith("Not ready within 0s: StatefulSet")
    assert not ManagedObject.objects.filter(resource_id=db.resource_id, deleted_at__isnull=True).exists()
    left = client.AppsV1Api(kube_api).list_namespaced_stateful_set(f"atlas-{active_ns.name}").items
    assert "stuck" not in [s.metadata.name for s in left]


def test_the_reconcile_restores_deleted_and_changed_objects_and_reports_them(active_ns, core, kube_api, api, requester):
    ns = f"atlas-{active_ns.name}"
    resource = active_ns.resource
    net = client.NetworkingV1Api(kube_api)
    old_uid = net.read_namespaced_network_policy("leasehold-default", ns).metadata.uid
    net.delete_namespaced_network_policy("leasehold-default", ns)
    core.patch_namespaced_resource_quota("leasehold", ns, {"spec": {"hard": {"requests.cpu": "64"}}})

    findings = resource_reconcile(resource_id=resource.pk)

    assert len(findings) == 2, findings
    new_uid = net.read_namespaced_network_policy("leasehold-default", ns).metadata.uid
    assert new_uid != old_uid
    assert core.read_namespaced_resource_quota("leasehold", ns).spec.hard["requests.cpu"] == "4"
    policy = ManagedObject.objects.get(resource=resource, kind="NetworkPolicy")
    assert (policy.uid, policy.drift) == (new_uid, "was deleted outside Leasehold; re-applied")
    assert AuditEvent.objects.filter(resource=resource, verb="object_restored").count() == 2
    objects = api.as_(requester).get(f"/api/v1/resources/{resource.pk}/").json()["objects"]
    assert {o["kind"]: o["drift"] for o in objects}["NetworkPolicy"] == "was deleted outside Leasehold; re-applied"

    # Converged: a second pass finds nothing and writes nothing.
    report = resources_reconcile()
    assert report.findings == [] and report.errors == []
    assert AuditEvent.objects.filter(resource=resource, verb="object_restored").count() == 2


def test_the_reconcile_brings_a_namespace_to_a_changed_pod_security_level(active_ns, core, settings):
    ns = f"atlas-{active_ns.name}"
    labels = core.read_namespace(ns).metadata.labels
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    settings.LEASEHOLD_POD_SECURITY = {**settings.LEASEHOLD_POD_SECURITY, "dev": "baseline"}
    settings.LEASEHOLD_POD_SECURITY_VERSION = "v1.30"

    findings = resource_reconcile(resource_id=active_ns.resource.pk)

    note = "Pod Security labels restored to the configured level (LEASEHOLD_POD_SECURITY)"
    assert [str(f) for f in findings] == [f"Namespace {ns}: {note}"]
    assert [f.outcome for f in findings] == [DriftOutcome.RESTORED]
    labels = core.read_namespace(ns).metadata.labels
    for mode in ("enforce", "audit", "warn"):
        assert labels[f"pod-security.kubernetes.io/{mode}"] == "baseline"
        assert labels[f"pod-security.kubernetes.io/{mode}-version"] == "v1.30"
    assert AuditEvent.objects.get(resource=active_ns.resource, verb="object_restored").detail.endswith(note)


def test_the_progress_is_served_to_the_api_and_as_an_htmx_card(approved_namespace, api, client, requester, outsider):
    request = approved_namespace()
    body = api.as_(requester).get(f"/api/v1/requests/{request.pk}/progress/").json()
    assert (body["live"], body["phase"], body["steps"]) == (True, "queued", [])
    client.force_login(requester)
    page = client.get(f"/requests/{request.pk}/").content.decode()
    assert 'hx-trigger="every 2s"' in page

    request_provision(request_id=request.pk)
    body = api.get(f"/api/v1/requests/{request.pk}/progress/").json()
    assert body["live"] is False and body["phase"] == "done"
    assert [s["state"] for s in body["steps"]] == ["ready"] * 5
    assert body["steps"][0]["object"] == f"Namespace atlas-{request.name}"
    # The polling card tells the page to reload once the request is no longer provisioning.
    polled = client.get(f"/api/v1/requests/{request.pk}/progress/?polling=1", HTTP_HX_REQUEST="true")
    assert polled.headers.get("HX-Refresh") == "true"
    assert "every 2s" not in client.get(f"/requests/{request.pk}/").content.decode()
    assert api.as_(outsider).get(f"/api/v1/requests/{request.pk}/progress/").status_code == 404


def test_an_admin_retry_of_a_failed_request_provisions_it_afresh(
    approved_namespace, api, admin_user, requester, django_capture_on_commit_callbacks
):
    request = approved_namespace()
    request_fail(request_id=request.pk, reason="Kubernetes API answered 403 Forbidden: nope")
    assert api.as_(requester).post(f"/api/v1/requests/{request.pk}/retry/").status_code == 403

    with django_capture_on_commit_callbacks() as published:
        response = api.as_(admin_user).post(f"/api/v1/requests/{request.pk}/retry/")
    assert response.status_code == 200, response.content
    assert (response.json()["state"], response.json()["error"]) == ("approved", None)
    assert len([c for c in published if not isinstance(c, MetricUpdate)]) == 1
    assert ProvisioningJob.objects.get(pk=request.pk).phase == Phase.QUEUED

    request_provision(request_id=request.pk)
    request.refresh_from_db()
    assert (request.state, request.deliveries) == ("active", 1)
    assert ManagedObject.objects.filter(resource_id=request.resource_id, applied_at__isnull=False).count() == 5


def test_run_periodic_once_runs_every_scheduled_job_like_beat(approved_namespace, settings):
    from django.core.management import call_command

    from requests_app.management.commands.run_periodic import schedule_entries

    assert {e.task for e in schedule_entries()} >= {
        "provisioning.tasks.sweep_stuck_requests",
        "provisioning.tasks.reconcile_resources",
        "leases.tasks.reclaim_leases",
    }
    stuck = approved_namespace()
    make_old(stuck)
    call_command("run_periodic", "--once")
    assert AuditEvent.objects.filter(request=stuck, verb="requeued").count() == 1
