"""Leases on the real services: notices, extension, quarantine and restore, release, hand-over."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.test import Client
from django.utils import timezone
from kubernetes import client

from approvals.services import step_decide
from leases.models import Lease
from leases.services.extension import extension_fulfil, extensions_sweep, lease_extend
from leases.services.reclaim_pass import reclaim_pass
from provisioning.renderers import rfc3339
from provisioning.services.provision import request_provision
from requests_app.errors import ValidationFailed
from requests_app.models import AppTemplate, AuditEvent, Resource, ResourceRequest
from requests_app.services import request_submit
from tests.factories import app_template

pytestmark = pytest.mark.django_db


@pytest.fixture
def namespace(approved_namespace):
    request = approved_namespace()
    request_provision(request_id=request.pk)
    request.refresh_from_db()
    return request.resource


def lease_of(resource) -> Lease:
    return Lease.objects.get(resource=resource)


def passes(capture, *moments):
    """Reclamation passes, with the emails they send after commit delivered."""
    for moment in moments:
        with capture(execute=True):
            report = reclaim_pass(now=moment)
    return report


def test_each_notice_is_sent_once_across_passes(namespace, settings, django_capture_on_commit_callbacks):
    settings.LEASE_NOTICE_DAYS = [7, 1]
    lease = lease_of(namespace)
    capture = django_capture_on_commit_callbacks
    passes(capture, *[lease.expires_at - timedelta(days=6)] * 3)
    assert len(mail.outbox) == 1
    assert "expires in 7 days" in mail.outbox[0].subject
    assert "dana@example.org" in mail.outbox[0].to
    assert f"/resources/{namespace.pk}/" in mail.outbox[0].body
    passes(capture, lease.expires_at - timedelta(hours=20), lease.expires_at - timedelta(hours=19))
    assert [m.subject.split(" expires in ")[1] for m in mail.outbox] == ["7 days", "1 day"]
    assert AuditEvent.objects.filter(verb="lease_notice", resource=namespace).count() == 2


def test_a_dry_run_lists_notices_and_sends_none(namespace):
    lease = lease_of(namespace)
    report = reclaim_pass(now=lease.expires_at - timedelta(days=1), dry_run=True)
    assert len(report.notices) == 1
    assert mail.outbox == []
    lease.refresh_from_db()
    assert lease.notices_sent == []


def test_an_extension_within_policy_applies_at_once_and_restamps_the_objects(namespace, teammate, core):
    lease = lease_of(namespace)
    before = lease.expires_at
    outcome, result = lease_extend(resource=namespace, actor=teammate, days=10, justification="still testing")
    assert outcome == "extended"
    lease.refresh_from_db()
    assert lease.expires_at == before + timedelta(days=10)
    assert lease.extensions == 1
    annotation = core.read_namespace(namespace.namespace_name).metadata.annotations["leasehold.io/lease-expires"]
    assert annotation == rfc3339(lease.expires_at)
    quota = core.read_namespaced_resource_quota("leasehold", namespace.namespace_name)
    assert quota.metadata.annotations["leasehold.io/lease-expires"] == rfc3339(lease.expires_at)


def test_an_extension_beyond_the_total_goes_through_approval(
    namespace, requester, approver, settings, django_capture_on_commit_callbacks
):
    settings.LEASE_MAX_TOTAL_DAYS = 20
    lease = lease_of(namespace)
    before = lease.expires_at
    outcome, request = lease_extend(resource=namespace, actor=requester, days=10, justification="quarter end")
    assert outcome == "requested"
    assert (request.action, request.state, request.resource) == ("extend", "pending_approval", namespace)
    lease.refresh_from_db()
    assert lease.expires_at == before
    step = request.approval_steps.get()
    with django_capture_on_commit_callbacks(execute=True):
        step_decide(step_id=step.pk, user=approver, verdict="approve")
    # Nothing happens in the approver's web request: a task (sent to the broker) carries it out.
    request.refresh_from_db()
    assert request.state == "approved"
    for _ in range(2):  # delivered twice (at least once): extended once
        extension_fulfil(request_id=request.pk)
    request.refresh_from_db()
    lease.refresh_from_db()
    assert request.state == "active"
    assert (lease.expires_at, lease.extensions) == (before + timedelta(days=10), 1)


def test_an_extension_approved_while_the_lease_is_reclaiming_fails_with_the_reason(
    namespace, requester, approver, settings, core
):
    settings.LEASE_MAX_TOTAL_DAYS = 20
    _, request = lease_extend(resource=namespace, actor=requester, days=10, justification="quarter end")
    step_decide(step_id=request.approval_steps.get().pk, user=approver, verdict="approve")
    request.refresh_from_db()
    assert request.state == "approved"  # its task has not run yet
    from leases.services.reclaim import resource_release

    resource_release(resource=namespace, actor=requester)
    assert lease_of(namespace).state in ("reclaiming", "reclaimed")

    extension_fulfil(request_id=request.pk)

    request.refresh_from_db()
    assert request.state == "failed"
    assert "can no longer be extended" in request.error
    assert AuditEvent.objects.filter(request=request, verb="failed").count() == 1


def test_an_extension_still_waiting_is_withdrawn_when_reclamation_starts(namespace, requester, approver, settings):
    from approvals.selectors import steps_decidable_by
    from leases.services.reclaim import resource_release

    settings.LEASE_MAX_TOTAL_DAYS = 20
    _, request = lease_extend(resource=namespace, actor=requester, days=10, justification="quarter end")
    assert steps_decidable_by(approver).filter(request=request).exists()

    resource_release(resource=namespace, actor=requester)

    request.refresh_from_db()
    assert request.state == "cancelled"
    assert "being reclaimed" in AuditEvent.objects.get(request=request, verb="cancelled").detail
    assert not steps_decidable_by(approver).filter(request=request).exists()


def test_a_lost_extension_task_is_sent_again_by_the_follow_up(namespace, requester, approver, settings):
    settings.LEASE_MAX_TOTAL_DAYS = 20
    _, request = lease_extend(resource=namespace, actor=requester, days=10, justification="quarter end")
    step_decide(step_id=request.approval_steps.get().pk, user=approver, verdict="approve")
    assert extensions_sweep() == []  # just approved: its task is on its way
    ResourceRequest.objects.filter(pk=request.pk).update(updated_at=timezone.now() - timedelta(minutes=5))
    assert extensions_sweep() == [str(request.pk)]


def test_bad_extensions_are_refused(namespace, requester, outsider):
    with pytest.raises(ValidationFailed):
        lease_extend(resource=namespace, actor=requester, days=0, justification="x")
    with pytest.raises(ValidationFailed):
        lease_extend(resource=namespace, actor=requester, days=5, justification=" ")
    from requests_app.errors import NotAllowed

    with pytest.raises(NotAllowed):
        lease_extend(resource=namespace, actor=outsider, days=5, justification="mine now")


def provisioned_app(namespace, requester, approver, name: str = "shop", replicas: int = 2) -> ResourceRequest:
    """An app of `replicas` replicas in `namespace`, approved and provisioned on the test cluster."""
    if not AppTemplate.objects.filter(slug="web").exists():
        app_template("web")
    app = request_submit(
        requester=requester,
        team="atlas",
        kind="app",
        name=name,
        environment="dev",
        lease_days=7,
        justification="t",
        spec={"namespace": str(namespace.pk), "template": "web", "replicas": replicas},
    )
    for step in app.approval_steps.all():
        step_decide(step_id=step.pk, user=approver, verdict="approve")
    request_provision(request_id=app.pk)
    return app


def test_grace_scales_workloads_to_zero_and_an_extension_brings_them_back(
    namespace, requester, approver, kube_api, django_capture_on_commit_callbacks
):
    app = provisioned_app(namespace, requester, approver)
    apps = client.AppsV1Api(kube_api)
    ns = namespace.namespace_name
    lease = lease_of(namespace)

    app_lease = Lease.objects.get(resource__created_by_request=app)
    assert app_lease.expires_at <= lease.expires_at  # an app never outlives its namespace
    report = passes(django_capture_on_commit_callbacks, lease.expires_at + timedelta(minutes=1))
    assert any(ns in line for line in report.to_grace)
    assert apps.read_namespaced_deployment("shop", ns).spec.replicas == 0
    app_lease.refresh_from_db()
    assert app_lease.state == "grace"
    assert list(app_lease.quarantined_replicas.values()) == [2]
    assert any("quarantined" in m.subject for m in mail.outbox)

    reclaim_pass(now=lease.expires_at + timedelta(minutes=2))  # a second pass keeps the count to restore
    app_lease.refresh_from_db()
    assert list(app_lease.quarantined_replicas.values()) == [2]

    later = lease.expires_at + timedelta(minutes=3)
    lease_extend(resource=namespace, actor=requester, days=7, justification="we still need it", now=later)
    app_resource = Resource.objects.get(created_by_request=app)
    lease_extend(resource=app_resource, actor=requester, days=7, justification="and the shop", now=later)
    lease.refresh_from_db()
    app_lease.refresh_from_db()
    namespace.refresh_from_db()
    assert (lease.state, app_lease.state, namespace.state) == ("active", "active", "active")
    assert apps.read_namespaced_deployment("shop", ns).spec.replicas == 2


def test_extending_a_namespace_in_grace_together_with_its_apps_scales_them_back_up(
    namespace, requester, approver, kube_api, django_capture_on_commit_callbacks
):
    """The web's extend form on the namespace's page: the apps chosen come out of quarantine with it and
    their Deployments get their replicas back in the cluster; the one not chosen stays at zero, and the
    page says which came back and which is still quarantined."""
    shop = Resource.objects.get(created_by_request=provisioned_app(namespace, requester, approver, "shop"))
    cart = Resource.objects.get(created_by_request=provisioned_app(namespace, requester, approver, "cart", 1))
    apps = client.AppsV1Api(kube_api)
    ns = namespace.namespace_name
    passes(django_capture_on_commit_callbacks, lease_of(namespace).expires_at + timedelta(minutes=1))
    assert [apps.read_namespaced_deployment(n, ns).spec.replicas for n in ("shop", "cart")] == [0, 0]

    web = Client()
    web.force_login(requester)
    page = web.get(f"/resources/{namespace.pk}/").content.decode()
    assert f'name="children" value="{shop.pk}" checked' in page  # quarantined: preselected
    response = web.post(
        f"/resources/{namespace.pk}/extend/",
        {"days": 7, "justification": "the demo moved", "children": [str(shop.pk)]},
        follow=True,
    )
    page = response.content.decode()
    assert "Restored with it (out of quarantine, workloads scaled back up): " + shop.display_name in page
    assert "Still quarantined in this namespace: " + cart.display_name in page
    assert apps.read_namespaced_deployment("shop", ns).spec.replicas == 2
    assert apps.read_namespaced_deployment("cart", ns).spec.replicas == 0
    assert (lease_of(shop).state, lease_of(shop).quarantined_replicas) == ("active", {})
    assert lease_of(cart).state == "grace"
    assert AuditEvent.objects.filter(resource=shop, verb="workload_restored").exists()


def test_an_owner_who_left_the_team_hands_over_to_the_team(
    namespace, requester, teammate, django_capture_on_commit_callbacks
):
    requester.groups.clear()
    report = passes(django_capture_on_commit_callbacks, lease_of(namespace).expires_at - timedelta(days=30))
    namespace.refresh_from_db()
    assert namespace.owner is None
    assert len(report.handed_over) == 1
    assert AuditEvent.objects.filter(verb="owner_left", resource=namespace).count() == 1
    assert any("now belongs to team atlas" in m.subject for m in mail.outbox)
    reclaim_pass(now=lease_of(namespace).expires_at - timedelta(days=30))
    assert AuditEvent.objects.filter(verb="owner_left").count() == 1


def test_release_deletes_at_once_without_grace(namespace, requester, core):
    from leases.services.reclaim import resource_release
    from tests.integration.conftest import namespace_gone, wait_for

    done, _ = resource_release(resource=namespace, actor=requester)
    lease = lease_of(namespace)
    assert lease.state in ("reclaiming", "reclaimed")

    def finished():
        reclaim_pass(now=lease.starts_at + timedelta(minutes=1))
        lease.refresh_from_db()
        return lease.state == "reclaimed"

    wait_for(finished, what="the released namespace to be gone")
    assert namespace_gone(core, namespace.namespace_name)
    assert ResourceRequest.objects.get(pk=namespace.created_by_request_id).state == "reclaimed"
    assert lease.last_manifests[0]["kind"] == "Namespace"
