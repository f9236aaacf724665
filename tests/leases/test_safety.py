"""Reclamation is safe: each lease once under concurrent passes, foreign objects survive, a stuck
namespace stays `reclaiming`, owners who left the directory hand over to the team."""

from __future__ import annotations

import os
from datetime import timedelta

import ldap
import pytest
from django.contrib.auth import authenticate
from django.test import RequestFactory
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from approvals.services import step_decide
from leases.models import Lease
from leases.services.reclaim_pass import reclaim_pass
from provisioning.services.provision import request_provision
from requests_app.models import AuditEvent, Resource
from requests_app.services import request_submit
from tests.conftest import require_env
from tests.factories import active_namespace, app_template, team
from tests.integration.conftest import namespace_gone, wait_for
from tests.passes import concurrent_passes


def provisioned(approved_namespace, name):
    request = approved_namespace(name=name)
    request_provision(request_id=request.pk)
    request.refresh_from_db()
    return request.resource


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_passes_reclaim_each_lease_once(approved_namespace, unique_name, core):
    namespaces = [provisioned(approved_namespace, f"{unique_name}{i}") for i in range(3)]
    after = max(Lease.objects.get(resource=n).expires_at for n in namespaces) + timedelta(days=30)
    reclaim_pass(now=after - timedelta(days=10))  # into grace

    def passes_done():
        errors = concurrent_passes(after)
        assert not errors, errors
        return Lease.objects.filter(resource__in=namespaces, state="reclaimed").count() == 3

    wait_for(passes_done, timeout=90, interval=1, what="all three namespaces to be reclaimed")
    for namespace in namespaces:
        assert AuditEvent.objects.filter(resource=namespace, verb="lease_reclaimed").count() == 1
        assert AuditEvent.objects.filter(resource=namespace, verb="reclaim_started").count() == 2  # lease + resource
        assert namespace_gone(core, namespace.namespace_name)


@pytest.mark.django_db
def test_objects_that_are_not_the_resources_survive_its_reclamation(
    approved_namespace, requester, approver, kube_api, core
):
    namespace = provisioned(approved_namespace, None)
    ns = namespace.namespace_name
    app_template("web")
    app = request_submit(
        requester=requester,
        team="atlas",
        kind="app",
        name="shop",
        environment="dev",
        lease_days=3,
        justification="t",
        spec={"namespace": str(namespace.pk), "template": "web"},
    )
    for step in app.approval_steps.all():
        step_decide(step_id=step.pk, user=approver, verdict="approve")
    request_provision(request_id=app.pk)
    app.refresh_from_db()
    core.create_namespaced_config_map(ns, {"metadata": {"name": "team-notes"}, "data": {"a": "b"}})
    core.patch_namespaced_service("shop", ns, {"metadata": {"labels": {"leasehold.io/resource": "someone-else"}}})

    lease = Lease.objects.get(resource=app.resource)
    reclaim_pass(now=lease.expires_at + timedelta(minutes=1))
    lease.refresh_from_db()
    report = reclaim_pass(now=lease.grace_until + timedelta(minutes=1))
    lease.refresh_from_db()
    assert lease.state == "reclaimed", report.lines()
    with pytest.raises(ApiException):
        client.AppsV1Api(kube_api).read_namespaced_deployment("shop", ns)
    assert core.read_namespaced_service("shop", ns).metadata.labels["leasehold.io/resource"] == "someone-else"
    assert core.read_namespaced_config_map("team-notes", ns).data == {"a": "b"}
    assert core.read_namespace(ns).status.phase == "Active"
    assert "Service" in lease.last_report and "does not name this resource" in lease.last_report


@pytest.mark.django_db
def test_a_namespace_stuck_terminating_stays_reclaiming(approved_namespace, core):
    namespace = provisioned(approved_namespace, None)
    ns = namespace.namespace_name
    core.patch_namespace(ns, {"metadata": {"finalizers": ["leasehold.io/test-stuck"]}})
    try:
        lease = Lease.objects.get(resource=namespace)
        reclaim_pass(now=lease.expires_at + timedelta(minutes=1))
        lease.refresh_from_db()
        for _ in range(3):
            report = reclaim_pass(now=lease.grace_until + timedelta(minutes=1))
        lease.refresh_from_db()
        namespace.refresh_from_db()
        assert (lease.state, namespace.state) == ("reclaiming", "reclaiming")
        assert any("still terminating" in line for line in report.in_progress)
        assert core.read_namespace(ns).status.phase == "Terminating"
    finally:
        core.patch_namespace(ns, {"metadata": {"finalizers": None}})


@pytest.mark.integration  # needs the real LDAP server
@pytest.mark.django_db
def test_an_owner_removed_from_the_directory_group_hands_over_to_the_team():
    require_env("LDAP_URI", "LDAP_BIND_DN", "LDAP_BIND_PASSWORD", "LDAP_GROUP_BASE")
    dana = authenticate(RequestFactory().post("/login/"), username="dana", password="leasehold")
    assert dana is not None
    atlas = team("atlas")
    resource = active_namespace(atlas, dana, name="handover")
    group_dn = f"cn=team-atlas,{os.environ['LDAP_GROUP_BASE']}"
    member = f"uid=dana,{os.environ['LDAP_USER_BASE']}".encode()
    conn = ldap.initialize(os.environ["LDAP_URI"])
    conn.simple_bind_s(os.environ["LDAP_BIND_DN"], os.environ["LDAP_BIND_PASSWORD"])
    conn.modify_s(group_dn, [(ldap.MOD_DELETE, "member", [member])])
    try:
        from leases.services.opening import lease_open

        lease = lease_open(resource=resource)
        reclaim_pass(now=lease.expires_at - timedelta(days=13))
    finally:
        conn.modify_s(group_dn, [(ldap.MOD_ADD, "member", [member])])
        conn.unbind_s()
    resource.refresh_from_db()
    assert resource.owner is None
    assert AuditEvent.objects.filter(verb="owner_left", resource=resource).count() == 1
    assert Resource.objects.filter(owner=dana).count() == 0
