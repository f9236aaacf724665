"""Lease expiry, grace and reclamation against the real Kubernetes API server."""

import os
import re
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command

from leases.models import Lease
from provisioning.models import ManagedObject
from provisioning.services.provision import request_provision
from provisioning.services.teardown import resource_teardown
from requests_app.models import AuditEvent, Resource

from .conftest import namespace_gone, wait_for

pytestmark = pytest.mark.django_db


def reclaim(now, *extra) -> str:
    out = StringIO()
    call_command("reclaim_leases", "--now", now.isoformat(), *extra, stdout=out)
    return out.getvalue()


@pytest.fixture
def active_namespace(approved_namespace):
    request = approved_namespace()
    request_provision(request_id=request.pk)
    request.refresh_from_db()
    return request


def test_an_unexpired_lease_is_left_alone(active_namespace):
    lease = Lease.objects.get(resource=active_namespace.resource)
    output = reclaim(lease.expires_at - timedelta(seconds=1))
    lease.refresh_from_db()
    assert lease.state == "active"
    assert "move to grace (quarantine): 0" in output


def test_expiry_then_grace_then_deletion(active_namespace, core, settings):
    resource = active_namespace.resource
    lease = Lease.objects.get(resource=resource)
    ns_name = f"atlas-{active_namespace.name}"

    reclaim(lease.expires_at + timedelta(minutes=1))
    lease.refresh_from_db()
    assert lease.state == "grace"
    assert lease.grace_until == lease.expires_at + timedelta(minutes=1, days=settings.LEASE_GRACE_DAYS)
    assert core.read_namespace(ns_name).status.phase == "Active"

    reclaim(lease.grace_until - timedelta(seconds=1))
    lease.refresh_from_db()
    assert lease.state == "grace"

    after_grace = lease.grace_until + timedelta(seconds=1)

    def finished():
        reclaim(after_grace)
        lease.refresh_from_db()
        return lease.state == "reclaimed"

    wait_for(finished, what="the namespace to be deleted and the lease reclaimed")
    assert namespace_gone(core, ns_name)
    resource.refresh_from_db()
    active_namespace.refresh_from_db()
    assert (resource.state, active_namespace.state) == ("reclaimed", "reclaimed")
    assert not ManagedObject.objects.filter(resource=resource, deleted_at__isnull=True).exists()
    verbs = list(AuditEvent.objects.filter(resource=resource).values_list("verb", flat=True))
    assert {"lease_expired", "quarantined", "reclaim_started", "lease_reclaimed", "reclaimed"} <= set(verbs)


def test_a_dry_run_reports_and_changes_nothing(active_namespace, core):
    lease = Lease.objects.get(resource=active_namespace.resource)
    events = AuditEvent.objects.count()
    output = reclaim(lease.expires_at + timedelta(days=30), "--dry-run")
    assert "would move to grace (quarantine): 1" in output
    assert f"atlas-{active_namespace.name}" in output
    lease.refresh_from_db()
    assert lease.state == "active"
    assert AuditEvent.objects.count() == events
    assert core.read_namespace(f"atlas-{active_namespace.name}").status.phase == "Active"


def test_a_pass_stops_after_the_cap(approved_namespace, settings, unique_name):
    settings.RECLAIM_MAX_PER_RUN = 1
    leases = []
    for suffix in ("a", "b"):
        request = approved_namespace(name=f"{unique_name}{suffix}")
        request_provision(request_id=request.pk)
        leases.append(Lease.objects.get(resource__created_by_request=request))
    far = max(lease.expires_at for lease in leases) + timedelta(days=30)
    reclaim(far)  # both into grace
    output = reclaim(far + timedelta(days=30))
    assert "left for the next pass (RECLAIM_MAX_PER_RUN=1 per cluster): 1" in output
    assert Lease.objects.filter(pk__in=[lease.pk for lease in leases], state="grace").count() == 1


# Kubernetes' own, the service's (LEASEHOLD_SERVICE_NAMESPACE) and its backup Jobs' (LEASEHOLD_BACKUP_NAMESPACE).
@pytest.mark.parametrize("protected", ["kube-system", "leasehold", "leasehold-backups"])
def test_protected_namespaces_are_never_deleted(active_namespace, protected):
    resource = active_namespace.resource
    forged = ManagedObject.objects.filter(resource=resource, kind="Namespace").get()
    ManagedObject.objects.filter(pk=forged.pk).update(name=protected)
    report = resource_teardown(resource=Resource.objects.get(pk=resource.pk))
    assert f"Namespace {protected}: protected namespace" in report.refused


def test_a_pass_that_cannot_reach_the_cluster_still_completes_and_says_so(active_namespace, settings):
    from provisioning import cluster

    lease = Lease.objects.get(resource=active_namespace.resource)
    reclaim(lease.expires_at + timedelta(minutes=1))
    lease.refresh_from_db()
    settings.LEASEHOLD_CLUSTER = "kubeconfig"
    settings.LEASEHOLD_K8S_RETRIES = 1

    good = os.environ["KUBECONFIG"]
    broken = good + ".broken"
    with open(good) as src, open(broken, "w") as dst:
        # Port 9 (discard) is closed on loopback: every call fails to connect.
        dst.write(re.sub(r"server: https://127\.0\.0\.1:\d+", "server: https://127.0.0.1:9", src.read()))
    os.environ["KUBECONFIG"] = broken
    cluster.reset_clients()
    try:
        err = StringIO()
        call_command(
            "reclaim_leases",
            "--now",
            (lease.grace_until + timedelta(minutes=1)).isoformat(),
            stdout=StringIO(),
            stderr=err,
        )
    finally:
        os.environ["KUBECONFIG"] = good
        cluster.reset_clients()
    assert "error:" in err.getvalue()
    lease.refresh_from_db()
    assert lease.state in ("grace", "reclaiming")  # nothing marked reclaimed that was not deleted
