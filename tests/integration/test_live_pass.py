"""The live reclamation pass in batches (issue 12): a DELETE's answer is read instead of the object, the
pass's queries do not grow with the namespaces it deletes, and concurrent passes still reclaim each lease
once; on the real API server and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from kubernetes.client.exceptions import ApiException

from leases.models import Lease
from leases.services.reclaim_pass import reclaim_pass
from provisioning import cluster
from requests_app.models import AuditEvent, Resource
from tests.passes import concurrent_passes

from .conftest import namespace_gone, provisioned_namespace, wait_for


def past_grace(namespaces: list[Resource], settings):
    """Pass them into grace; the instant at which all of them are due."""
    leases = Lease.objects.filter(resource__in=namespaces)
    expiry = max(lease.expires_at for lease in leases)
    reclaim_pass(now=expiry + timedelta(minutes=1))
    assert leases.filter(state="grace").count() == len(namespaces)
    return expiry + timedelta(days=settings.LEASE_GRACE_DAYS, minutes=2)


@pytest.mark.django_db
def test_a_delete_says_from_its_answer_whether_the_object_is_gone(core, cleanup_namespaces, unique_name):
    cleanup_namespaces.append(unique_name)
    core.create_namespace({"metadata": {"name": unique_name}})
    plain = core.create_namespaced_secret(unique_name, {"metadata": {"name": "plain"}})
    held = core.create_namespaced_secret(unique_name, {"metadata": {"name": "held", "finalizers": ["x.io/hold"]}})
    other = core.create_namespaced_secret(unique_name, {"metadata": {"name": "other"}})

    def ref(name: str) -> cluster.ObjectRef:
        return cluster.ObjectRef("v1", "Secret", unique_name, name)

    try:
        assert cluster.delete(ref("plain"), uid=plain.metadata.uid) == cluster.Deletion.DELETED
        with pytest.raises(ApiException) as gone:
            core.read_namespaced_secret("plain", unique_name)
        assert gone.value.status == 404
        assert cluster.delete(ref("plain")) == cluster.Deletion.GONE
        assert cluster.delete(ref("held"), uid=held.metadata.uid) == cluster.Deletion.TERMINATING
        assert core.read_namespaced_secret("held", unique_name).metadata.deletion_timestamp is not None
        # Another uid, or a version that is not the current one: refused, nothing deleted.
        assert cluster.delete(ref("other"), uid=plain.metadata.uid) == cluster.Deletion.CONFLICT
        stale = str(int(other.metadata.resource_version) - 1)
        assert cluster.delete(ref("other"), uid=other.metadata.uid, resource_version=stale) == cluster.Deletion.CONFLICT
        assert core.read_namespaced_secret("other", unique_name).metadata.uid == other.metadata.uid
    finally:
        core.patch_namespaced_secret("held", unique_name, {"metadata": {"finalizers": None}})


@pytest.mark.django_db
def test_a_passs_queries_do_not_grow_with_the_namespaces_it_deletes(approved_namespace, settings):
    def queries_to_reclaim(count: int) -> int:
        namespaces = [provisioned_namespace(approved_namespace) for _ in range(count)]
        due = past_grace(namespaces, settings)
        with CaptureQueriesContext(connection) as captured:
            report = reclaim_pass(now=due)
        assert len(report.in_progress) == count and report.errors == [], report.lines()
        Lease.objects.filter(resource__in=namespaces).update(state="reclaimed")  # out of the next one's way
        return len(captured)

    assert queries_to_reclaim(2) == queries_to_reclaim(6)


@pytest.mark.django_db(transaction=True)
def test_concurrent_passes_over_several_batches_reclaim_each_lease_once(approved_namespace, settings, core):
    settings.LEASEHOLD_K8S_CONCURRENCY = 1  # batches of four: six leases make two in each pass
    namespaces = [provisioned_namespace(approved_namespace) for _ in range(6)]
    due = past_grace(namespaces, settings)
    errors = concurrent_passes(due)
    assert not errors, errors
    for namespace in namespaces:
        assert AuditEvent.objects.filter(resource=namespace, verb="reclaim_started").count() == 2  # lease + resource
    assert Lease.objects.filter(resource__in=namespaces, state__in=["reclaiming", "reclaimed"]).count() == 6
    assert Lease.objects.filter(resource__in=namespaces, claim_token__isnull=False).count() == 0

    def all_reclaimed() -> bool:
        reclaim_pass(now=due)
        return Lease.objects.filter(resource__in=namespaces, state="reclaimed").count() == 6

    wait_for(all_reclaimed, timeout=90, interval=1, what="the namespaces to go and the follow-up to record it")
    for namespace in namespaces:
        assert AuditEvent.objects.filter(resource=namespace, verb="lease_reclaimed").count() == 1
        assert namespace_gone(core, namespace.namespace_name)
