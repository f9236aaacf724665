"""A Redis cache on the real Kubernetes API server: applied, ready, bound, quarantined and reclaimed.

The local control plane runs no kubelet, so no Redis process ever starts: what is tested is what the API
server keeps of the objects (and the StatefulSet's status, which the test sets in the kubelet's place).
"""

from __future__ import annotations

import base64
import json
from datetime import timedelta

import pytest
from django.test import Client, override_settings
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from approvals.services import step_decide
from leases.models import Backup, Lease
from leases.services.reclaim_pass import reclaim_pass
from provisioning.errors import PermanentClusterError
from provisioning.models import ManagedObject, ProvisioningJob
from provisioning.services.plan import request_plan
from provisioning.services.provision import request_provision
from requests_app.models import Resource
from requests_app.services import request_submit
from tests.factories import app_template
from tests.integration.conftest import file_and_provision, provisioned_namespace, wait_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def namespace(approved_namespace):
    return provisioned_namespace(approved_namespace)  # medium: room for a cache and an app


def cache_fields(namespace, name="sessions", **spec) -> dict:
    spec = {"namespace": namespace.namespace_name, "engine": "redis", "version": "7", "plan": "small", **spec}
    return {"kind": "cache", "name": name, "spec": spec}


def file_cache(requester, approver, namespace, name="sessions", **spec):
    """A cache filed, approved and provisioned on the test cluster: its request, active."""
    return file_and_provision(requester, approver, **cache_fields(namespace, name, **spec))


def approved_cache(requester, approver, namespace):
    """A cache filed and approved, not provisioned yet: its request."""
    fields = cache_fields(namespace)
    request = request_submit(
        requester=requester, team="atlas", environment="dev", lease_days=7, justification="t", **fields
    )
    while step := request.approval_steps.filter(state="pending").first():
        step_decide(step_id=step.pk, user=approver, verdict="approve")
    return request


def test_a_cache_is_applied_as_planned_and_its_password_stays_in_its_secret(
    namespace, requester, approver, kube_api, core, api
):
    ns = namespace.namespace_name
    request = file_cache(requester, approver, namespace, persistence=True)
    cache = request.resource

    secret = core.read_namespaced_secret("sessions-credentials", ns)
    password = base64.b64decode(secret.data["password"]).decode()
    assert len(password) >= 24
    url = base64.b64decode(secret.data["REDIS_URL"]).decode()
    assert url == f"redis://:{password}@sessions.{ns}.svc:6379/0"
    assert base64.b64decode(secret.data["redis.conf"]).decode() == f"requirepass {password}\n"

    sts = client.AppsV1Api(kube_api).read_namespaced_stateful_set("sessions", ns)
    assert sts.metadata.labels["leasehold.io/resource"] == str(cache.pk)
    assert sts.metadata.managed_fields[0].manager == "leasehold"  # server-side apply, our field manager
    redis = sts.spec.template.spec.containers[0]
    assert redis.image.startswith("docker.io/library/redis:7.2.")
    assert password not in json.dumps(client.ApiClient().sanitize_for_serialization(sts))
    assert sts.spec.volume_claim_templates[0].spec.resources.requests["storage"] == "1Gi"
    assert redis.resources.limits == {"cpu": "500m", "memory": "256Mi"}
    service = core.read_namespaced_service("sessions", ns)
    assert [(p.port, p.protocol) for p in service.spec.ports] == [(6379, "TCP")]
    applied = {(o.kind, o.name) for o in ManagedObject.objects.filter(resource=cache)}
    planned = {(m["kind"], m["metadata"]["name"]) for m in request_plan(request=request)}
    assert (
        applied == planned == {("Secret", "sessions-credentials"), ("Service", "sessions"), ("StatefulSet", "sessions")}
    )

    body = api.as_(requester).get(f"/api/v1/resources/{cache.pk}/").json()
    assert body["connection"] == {"host": f"sessions.{ns}.svc", "port": 6379, "secret_name": "sessions-credentials"}
    assert body["display_name"] == f"{ns} / sessions"
    web = Client()
    web.force_login(requester)
    for content in (
        api.get(f"/api/v1/resources/{cache.pk}/").content,
        api.get(f"/api/v1/requests/{request.pk}/").content,
        web.get(f"/resources/{cache.pk}/").content,
        web.get(f"/requests/{request.pk}/").content,
    ):
        assert password not in content.decode()
    assert password not in str(request_plan(request=request))

    request_provision(request_id=request.pk)  # a re-run keeps the password
    assert core.read_namespaced_secret("sessions-credentials", ns).data["password"] == secret.data["password"]


def test_another_teams_object_of_the_same_name_is_not_taken_over(namespace, requester, approver, core):
    ns = namespace.namespace_name
    core.create_namespaced_secret(ns, {"metadata": {"name": "sessions-credentials"}, "stringData": {"x": "y"}})
    request = approved_cache(requester, approver, namespace)
    with pytest.raises(PermanentClusterError, match="sessions-credentials already exists and does not belong"):
        request_provision(request_id=request.pk)  # the task marks the request failed with this
    assert base64.b64decode(core.read_namespaced_secret("sessions-credentials", ns).data["x"]) == b"y"


@override_settings(LEASEHOLD_WAIT_FOR_READY=True, LEASEHOLD_READY_TIMEOUT_SECONDS=300, LEASEHOLD_READY_POLL_SECONDS=5)
def test_with_readiness_on_a_cache_waits_for_its_statefulset(namespace, requester, approver):
    ns = namespace.namespace_name
    request = approved_cache(requester, approver, namespace)
    outcome = request_provision(request_id=request.pk)
    request.refresh_from_db()
    assert (outcome.retry_in, request.state) == (5, "provisioning")
    assert f"StatefulSet {ns}/sessions: " in ProvisioningJob.objects.get(pk=request.pk).last_error

    # The local control plane runs a controller manager but no kubelet: the StatefulSet controller keeps
    # its status at 0 ready pods (a patched status is overwritten), so it never gets there; a second
    # check waits again without counting as a delivery, like a database's.
    assert request_provision(request_id=request.pk).retry_in == 5
    request.refresh_from_db()
    assert (request.state, request.deliveries) == ("provisioning", 1)


def test_an_app_bound_to_a_cache_reads_redis_url_from_its_secret(namespace, requester, approver, kube_api):
    cache = file_cache(requester, approver, namespace).resource
    app_template("web")
    file_and_provision(
        requester,
        approver,
        kind="app",
        name="shop",
        spec={"namespace": str(namespace.pk), "template": "web", "cache": str(cache.pk)},
    )
    deployment = client.AppsV1Api(kube_api).read_namespaced_deployment("shop", namespace.namespace_name)
    env = {e.name: e for e in deployment.spec.template.spec.containers[0].env}
    assert env["REDIS_URL"].value is None
    assert (env["REDIS_URL"].value_from.secret_key_ref.name, env["REDIS_URL"].value_from.secret_key_ref.key) == (
        "sessions-credentials",
        "REDIS_URL",
    )


def test_quarantine_scales_a_cache_to_zero_and_reclamation_deletes_it_without_a_backup(
    namespace, requester, approver, kube_api, core
):
    ns = namespace.namespace_name
    cache = file_cache(requester, approver, namespace).resource
    apps = client.AppsV1Api(kube_api)
    lease = Lease.objects.get(resource=cache)

    reclaim_pass(now=lease.expires_at + timedelta(minutes=1))
    lease.refresh_from_db()
    assert lease.state == "grace"
    assert apps.read_namespaced_stateful_set("sessions", ns).spec.replicas == 0
    assert list(lease.quarantined_replicas.values()) == [1]

    after = lease.grace_until + timedelta(minutes=1)

    def reclaimed():
        reclaim_pass(now=after)
        lease.refresh_from_db()
        return lease.state == "reclaimed"

    wait_for(reclaimed, what="the cache to be reclaimed")
    assert not Backup.objects.filter(resource=cache).exists()
    cache.refresh_from_db()
    assert cache.state == "reclaimed"
    for read in (
        lambda: apps.read_namespaced_stateful_set("sessions", ns),
        lambda: core.read_namespaced_secret("sessions-credentials", ns),
        lambda: core.read_namespaced_service("sessions", ns),
    ):
        with pytest.raises(ApiException) as gone:
            read()
        assert gone.value.status == 404
    assert Resource.objects.get(pk=namespace.pk).state == "active"  # the namespace lives on


def test_drift_repair_puts_back_a_deleted_secret_and_a_changed_statefulset(
    namespace, requester, approver, kube_api, core
):
    from provisioning.services.reconcile import DriftOutcome, resource_reconcile

    ns = namespace.namespace_name
    cache = file_cache(requester, approver, namespace).resource
    apps = client.AppsV1Api(kube_api)
    core.delete_namespaced_secret("sessions-credentials", ns)
    changed = {"spec": {"template": {"spec": {"containers": [{"name": "redis", "image": "redis:latest"}]}}}}
    apps.patch_namespaced_stateful_set("sessions", ns, changed)

    findings = resource_reconcile(resource_id=cache.pk)

    texts = [str(f) for f in findings]
    assert any("Secret" in t and "with a new password" in t for t in texts), texts
    assert any("StatefulSet" in t for t in texts), texts
    assert {f.outcome for f in findings} <= {DriftOutcome.REAPPLIED, DriftOutcome.RESTORED}, findings
    image = apps.read_namespaced_stateful_set("sessions", ns).spec.template.spec.containers[0].image
    assert image.startswith("docker.io/library/redis:7.2.")
    data = core.read_namespaced_secret("sessions-credentials", ns).data
    password = base64.b64decode(data["password"]).decode()
    assert base64.b64decode(data["REDIS_URL"]).decode() == f"redis://:{password}@sessions.{ns}.svc:6379/0"
