"""Provisioning and teardown against the real Kubernetes API server."""

from datetime import timedelta

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from leases.models import Lease
from provisioning.models import ManagedObject
from provisioning.renderers import rfc3339
from provisioning.services.claims import _claim
from provisioning.services.provision import request_provision
from provisioning.services.teardown import resource_teardown
from provisioning.tasks import provision_request

pytestmark = pytest.mark.django_db


def test_it_applies_the_namespace_objects_with_contract_labels_and_records_them(approved_namespace, kube_api, core):
    request = approved_namespace()
    request_provision(request_id=request.pk)
    request.refresh_from_db()
    resource = request.resource
    assert (request.state, resource.state) == ("active", "active")

    ns_name = f"atlas-{request.name}"
    ns = core.read_namespace(ns_name)
    lease = Lease.objects.get(resource=resource)
    assert lease.expires_at == resource.activated_at + timedelta(days=14)
    assert ns.metadata.labels["app.kubernetes.io/managed-by"] == "leasehold"
    assert ns.metadata.labels["leasehold.io/resource"] == str(resource.pk)
    assert ns.metadata.labels["leasehold.io/team"] == "atlas"
    assert ns.metadata.labels["leasehold.io/environment"] == "dev"
    assert ns.metadata.annotations["leasehold.io/request"] == str(request.pk)
    assert ns.metadata.annotations["leasehold.io/owner"] == "dana"
    assert ns.metadata.annotations["leasehold.io/lease-expires"] == rfc3339(lease.expires_at)

    quota = core.read_namespaced_resource_quota("leasehold", ns_name)
    assert quota.spec.hard == {
        "requests.cpu": "4",
        "limits.cpu": "4",
        "requests.memory": "8Gi",
        "limits.memory": "8Gi",
        "requests.storage": "50Gi",
    }
    binding = client.RbacAuthorizationV1Api(kube_api).read_namespaced_role_binding("leasehold-team", ns_name)
    assert (binding.role_ref.name, binding.subjects[0].kind, binding.subjects[0].name) == (
        "edit",
        "Group",
        "team-atlas",
    )
    policy = client.NetworkingV1Api(kube_api).read_namespaced_network_policy("leasehold-default", ns_name)
    assert policy.metadata.labels["leasehold.io/resource"] == str(resource.pk)

    recorded = {(o.kind, o.namespace, o.name): o.uid for o in ManagedObject.objects.filter(resource=resource)}
    assert recorded[("Namespace", "", ns_name)] == ns.metadata.uid
    assert recorded[("ResourceQuota", ns_name, "leasehold")] == quota.metadata.uid
    assert len(recorded) == 5


def test_a_rerun_converges_without_duplicating_anything(approved_namespace, core):
    request = approved_namespace()
    _claim(request.pk)  # a worker claimed it and died before finishing
    request_provision(request_id=request.pk)
    first = {(o.kind, o.name): o.uid for o in ManagedObject.objects.all()}
    request_provision(request_id=request.pk)  # a redelivered message: nothing to do
    request.refresh_from_db()
    assert request.state == "active"
    assert {(o.kind, o.name): o.uid for o in ManagedObject.objects.all()} == first
    assert (
        core.list_namespaced_resource_quota(f"atlas-{request.name}").items[0].metadata.uid
        == first[("ResourceQuota", "leasehold")]
    )


def test_teardown_deletes_only_objects_that_carry_the_resources_label(approved_namespace, core):
    request = approved_namespace()
    request_provision(request_id=request.pk)
    request.refresh_from_db()
    ns_name = f"atlas-{request.name}"
    # Someone re-labelled the namespace: it is no longer provably ours.
    core.patch_namespace(ns_name, {"metadata": {"labels": {"leasehold.io/resource": "someone-else"}}})

    report = resource_teardown(resource=request.resource)

    assert [r.split(":")[0] for r in report.refused] == [f"Namespace {ns_name}"]
    assert core.read_namespace(ns_name).status.phase == "Active"
    with pytest.raises(ApiException) as exc:
        core.read_namespaced_resource_quota("leasehold", ns_name)
    assert exc.value.status == 404
    assert ManagedObject.objects.filter(resource=request.resource, deleted_at__isnull=True).count() == 1


def test_a_permanent_api_error_fails_the_request_with_the_reason(approved_namespace, requester):
    # A name the API server itself refuses (stored by hand, past the service's own validation).
    request = approved_namespace()
    type(request).objects.filter(pk=request.pk).update(name="Not-Valid")
    provision_request.apply(args=[str(request.pk)])
    request.refresh_from_db()
    assert request.state == "failed"
    assert "422" in request.error
