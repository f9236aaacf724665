"""Django admin: every model has a page; what approvers decided on cannot be rewritten from it; what
the reclaimer or a restore relies on cannot be deleted; the few legitimate changes go through services
and into the audit trail."""

from datetime import timedelta

import pytest
from django.apps import apps
from django.contrib import admin
from django.test import RequestFactory
from django.urls import reverse
from django.utils import timezone

from accounts.models import ApiToken
from accounts.services import token_issue
from approvals.models import ApprovalPolicy, ApprovalStep, Decision, Delegation
from approvals.selectors import policy_source_in_force
from approvals.services import delegation_create
from leases.models import Backup, Lease, OwnerCheck, ReclaimPass
from leases.services.opening import lease_open
from provisioning.models import ManagedObject, ProvisioningJob, Release
from provisioning.services.plan import request_plan
from requests_app.models import (
    AllowedRegistry,
    AppTemplate,
    AuditEvent,
    Cluster,
    Resource,
    ResourceRequest,
    Team,
)
from requests_app.services import heartbeat_record, mail_queue, request_submit
from tests.conftest import namespace_body
from tests.factories import GroupFactory, ResourceRequestFactory, active_namespace, app_template

pytestmark = pytest.mark.django_db
# The ModelAdmins are registered by the URLconf (config/admin_app.py): as the web has them.
admin.autodiscover()
OUR_APPS = ("requests_app", "approvals", "provisioning", "leases", "accounts")

# Edited in place by admins (every save and delete audited).
CATALOG = {Team, AppTemplate, AllowedRegistry, Cluster}
# Ended from the admin (deleted, audited), never added or changed there.
REVOCABLE = {ApiToken}
# Everything else: never deleted from the admin; added only through a service where that is a workflow
# step; changed only in the one field whose change is a service call.
ADDED_THROUGH_A_SERVICE = {ApprovalPolicy, Delegation}
EDITABLE = {Resource: {"owner", "reason"}, Lease: {"expires_at", "reason"}}


@pytest.fixture(autouse=True)
def fast_passwords(settings):
    """The personas' passwords are never checked here: skip the slow hasher."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def world(atlas, requester, approver, second_approver, admin_user, api):
    """One row of every model of ours: a filed request with its chain and a decision, an active namespace
    with its lease, objects, backup, job and release, a delegation, a template, a registry and a mail."""
    api.as_(requester).post("/api/v1/requests/", namespace_body(name="pending"), format="json")
    namespace = active_namespace(atlas, requester, name="checkout")
    lease_open(resource=namespace)
    step = ApprovalStep.objects.filter(state="pending").first()
    Decision.objects.create(step=step, approver=approver, verdict="approve", comment="ok")
    ManagedObject.objects.create(resource=namespace, api_version="v1", kind="Namespace", name="atlas-checkout")
    ProvisioningJob.objects.create(request=namespace.created_by_request)
    Release.objects.create(
        resource=namespace, number=1, request=namespace.created_by_request, image_tag="1", spec={}, manifests=[]
    )
    Backup.objects.create(
        resource=namespace,
        job_namespace="atlas-checkout",
        job_name="dump",
        location="pvc://x",
        started_at=timezone.now(),
    )
    today = timezone.localdate()
    delegation_create(
        delegator=approver, delegate=second_approver, starts_on=today, ends_on=today, actor=admin_user, today=today
    )
    ApprovalPolicy.objects.create(source=policy_source_in_force(), origin="test")
    app_template("web")
    mail_queue(topic="expiry", subject="s", body="b", to=["dana@example.org"], deliver=False)
    token_issue(user=requester)
    OwnerCheck.objects.create(user=requester, checked_at=timezone.now())
    heartbeat_record(task="provisioning.tasks.sweep_stuck_requests")
    now = timezone.now()
    ReclaimPass.objects.create(
        started_at=now, finished_at=now, duration_seconds=0.1, completed=True, origin="command", outcomes={}
    )
    return namespace


def admin_request(user):
    request = RequestFactory().get("/admin/")
    request.user = user
    return request


def test_every_model_of_ours_is_in_the_admin():
    ours = [m for m in apps.get_models() if m._meta.app_label in OUR_APPS]
    assert ours
    assert [m.__name__ for m in ours if m not in admin.site._registry] == []


def test_every_changelist_and_change_page_renders_for_an_admin(client, world, admin_user):
    client.force_login(admin_user)
    for model in admin.site._registry:
        if model._meta.app_label not in OUR_APPS:
            continue
        info = (model._meta.app_label, model._meta.model_name)
        assert client.get(reverse("admin:{}_{}_changelist".format(*info))).status_code == 200, info
        obj = model.objects.first()
        assert obj is not None, info
        assert client.get(reverse("admin:{}_{}_change".format(*info), args=[obj.pk])).status_code == 200, info


def test_only_the_catalog_can_be_added_changed_or_deleted_in_place(world, admin_user):
    """Every model of ours is either catalog or sealed; a new model must be placed in one of the two."""
    request = admin_request(admin_user)
    for model, model_admin in admin.site._registry.items():
        if model._meta.app_label not in OUR_APPS:
            continue
        obj = model.objects.first()
        name = model.__name__
        if model in CATALOG:
            assert model_admin.has_add_permission(request), name
            assert model_admin.has_delete_permission(request, obj), name
            continue
        if model in REVOCABLE:
            assert model_admin.has_delete_permission(request, obj), name
            assert not model_admin.has_add_permission(request), name
            assert not model_admin.has_change_permission(request, obj), name
            continue
        assert not model_admin.has_delete_permission(request, obj), name
        assert not model_admin.has_delete_permission(request), name
        assert model_admin.has_add_permission(request) == (model in ADDED_THROUGH_A_SERVICE), name
        editable = (
            set(model_admin.get_form(request, obj)(instance=obj).fields)
            if model_admin.has_change_permission(request, obj)
            else set()
        )
        assert editable == EDITABLE.get(model, set()), name
        assert "delete_selected" not in model_admin.get_actions(request), name


def test_a_reclaimed_resource_and_its_lease_are_shown_with_nothing_to_change(client, world, admin_user, teammate):
    Resource.objects.filter(pk=world.pk).update(state="reclaimed")
    Lease.objects.filter(resource=world).update(state="reclaimed")
    lease = Lease.objects.get(resource=world)
    client.force_login(admin_user)
    request = admin_request(admin_user)
    for model, obj in ((Resource, Resource.objects.get(pk=world.pk)), (Lease, lease)):
        assert set(admin.site._registry[model].get_form(request, obj)(instance=obj).fields) == set(), model
        page = client.get(reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_change", args=[obj.pk]))
        assert page.status_code == 200
        assert 'name="owner"' not in page.content.decode() and 'name="expires_at_0"' not in page.content.decode()
    resource_change(client, world, owner=teammate.pk, reason="too late")
    assert Resource.objects.get(pk=world.pk).owner.username == "dana"


def test_delete_and_add_pages_of_sealed_models_answer_403(client, world, admin_user):
    client.force_login(admin_user)
    for model in admin.site._registry:
        if model._meta.app_label not in OUR_APPS or model in CATALOG or model in REVOCABLE:
            continue
        info = (model._meta.app_label, model._meta.model_name)
        obj = model.objects.first()
        url = reverse("admin:{}_{}_delete".format(*info), args=[obj.pk])
        assert client.get(url).status_code == 403, info
        assert client.post(url, {"post": "yes"}).status_code == 403, info
        assert model.objects.filter(pk=obj.pk).exists(), info
        if model not in ADDED_THROUGH_A_SERVICE:
            assert client.get(reverse("admin:{}_{}_add".format(*info))).status_code == 403, info


def test_adding_a_managed_object_is_a_403_not_a_500(client, world, admin_user):
    client.force_login(admin_user)
    url = reverse("admin:provisioning_managedobject_add")
    assert client.get(url).status_code == 403
    assert client.post(url, {"api_version": "v1", "kind": "Secret", "name": "x"}).status_code == 403
    assert ManagedObject.objects.count() == 1


def test_the_bulk_delete_action_is_refused_for_sealed_models(client, world, admin_user):
    client.force_login(admin_user)
    lease = Lease.objects.get()
    response = client.post(
        reverse("admin:leases_lease_changelist"),
        {"action": "delete_selected", "_selected_action": [lease.pk], "post": "yes"},
    )
    assert response.status_code in (200, 302)
    assert Lease.objects.filter(pk=lease.pk).exists()


def test_a_filed_request_is_shown_read_only_and_a_post_changes_nothing(
    client, world, admin_user, requester, teammate, zephyr
):
    filed = ResourceRequest.objects.get(name="pending")
    client.force_login(admin_user)
    url = reverse("admin:requests_app_resourcerequest_change", args=[filed.pk])
    page = client.get(url).content.decode()
    assert 'name="spec"' not in page and 'name="requester"' not in page
    assert "medium" in page  # shown, as text
    events = AuditEvent.objects.count()
    response = client.post(
        url,
        {
            "spec": '{"plan": "large"}',
            "requester": teammate.pk,
            "team": zephyr.pk,
            "kind": "database",
            "name": "other",
            "environment": "prod",
            "lease_days": 90,
            "action": "create",
        },
    )
    assert response.status_code == 403
    filed.refresh_from_db()
    assert (filed.spec, filed.requester, filed.team.slug, filed.name, filed.environment, filed.lease_days) == (
        {"plan": "medium"},
        requester,
        "atlas",
        "pending",
        "dev",
        14,
    )
    assert AuditEvent.objects.count() == events


def test_a_failed_request_is_retried_through_the_service(client, world, admin_user, atlas, requester):
    failed = ResourceRequestFactory(team=atlas, requester=requester, name="broken", state="failed", error="boom")
    client.force_login(admin_user)
    client.post(
        reverse("admin:requests_app_resourcerequest_changelist"),
        {"action": "retry_failed", "_selected_action": [failed.pk]},
    )
    failed.refresh_from_db()
    assert failed.state == "approved"
    event = AuditEvent.objects.get(request=failed, verb="retried")
    assert (event.actor, event.from_state, event.to_state) == (admin_user, "failed", "approved")


def resource_change(client, resource, **data):
    return client.post(reverse("admin:requests_app_resource_change", args=[resource.pk]), data)


def test_a_resource_is_handed_over_in_its_team_through_the_service(client, world, admin_user, teammate, zephyr):
    client.force_login(admin_user)
    response = resource_change(
        client,
        world,
        owner=teammate.pk,
        reason="dana moved to another project",
        # read-only fields: ignored
        name="renamed",
        team=zephyr.pk,
        spec='{"plan": "large"}',
        environment="prod",
        lease_days=90,
    )
    assert response.status_code == 302, response.content
    world.refresh_from_db()
    assert (world.owner, world.name, world.team.slug, world.spec, world.environment, world.lease_days) == (
        teammate,
        "checkout",
        "atlas",
        {"plan": "small"},
        "dev",
        14,
    )
    event = AuditEvent.objects.get(verb="handed_over")
    assert (event.actor, event.resource, event.request) == (admin_user, world, world.created_by_request)
    assert event.detail == "owner: dana → tom: dana moved to another project"


def test_a_resource_can_be_handed_to_the_whole_team(client, world, admin_user):
    client.force_login(admin_user)
    assert resource_change(client, world, owner="", reason="the team owns it").status_code == 302
    world.refresh_from_db()
    assert world.owner is None
    assert AuditEvent.objects.get(verb="handed_over").detail == "owner: dana → team atlas: the team owns it"


def test_a_resource_is_not_handed_outside_its_team_nor_without_a_reason(client, world, admin_user, outsider, teammate):
    client.force_login(admin_user)
    response = resource_change(client, world, owner=outsider.pk, reason="why not")
    assert response.status_code == 200
    assert "owner" in response.context["adminform"].form.errors
    response = resource_change(client, world, owner=teammate.pk, reason=" ")
    assert response.status_code == 200
    assert "reason" in response.context["adminform"].form.errors
    world.refresh_from_db()
    assert world.owner.username == "dana"
    assert not AuditEvent.objects.filter(verb="handed_over").exists()


def test_saving_a_resource_unchanged_writes_nothing(client, world, admin_user, requester):
    client.force_login(admin_user)
    assert resource_change(client, world, owner=requester.pk, reason="").status_code == 302
    assert not AuditEvent.objects.filter(verb="handed_over").exists()


def lease_change(client, lease, when, **data):
    local = timezone.localtime(when)
    fields = {"expires_at_0": local.strftime("%Y-%m-%d"), "expires_at_1": local.strftime("%H:%M:%S"), **data}
    return client.post(reverse("admin:leases_lease_change", args=[lease.pk]), fields)


@pytest.fixture
def no_cluster(settings):
    """The re-stamp of the objects fails at once; the new expiry stands (as for extensions)."""
    settings.LEASEHOLD_CLUSTER = "local"
    settings.LEASEHOLD_LOCAL_KUBECONFIG = "/nonexistent/kubeconfig"


def test_a_lease_expiry_is_corrected_through_the_service(client, world, admin_user, no_cluster):
    lease = Lease.objects.get(resource=world)
    before = lease.expires_at
    wanted = (before - timedelta(days=3)).replace(microsecond=0)
    client.force_login(admin_user)
    response = lease_change(
        client,
        lease,
        wanted,
        reason="agreed end of the load tests",
        # read-only fields: ignored
        grace_until_0="2020-01-01",
        grace_until_1="00:00:00",
        quarantined_replicas='{"Deployment/x": 5}',
        extensions=7,
    )
    assert response.status_code == 302, response.content
    lease.refresh_from_db()
    world.refresh_from_db()
    assert (lease.expires_at, lease.grace_until, lease.quarantined_replicas, lease.extensions) == (wanted, None, {}, 0)
    assert world.lease_expires_at == wanted
    event = AuditEvent.objects.get(verb="lease_corrected")
    assert (event.actor, event.resource, event.target_type) == (admin_user, world, "lease")
    assert event.detail == (
        f"expires: {before:%Y-%m-%d %H:%M:%S} → {wanted:%Y-%m-%d %H:%M:%S} UTC: agreed end of the load tests"
    )


def test_a_lease_correction_beyond_policy_is_a_form_error(client, world, admin_user, settings):
    lease = Lease.objects.get(resource=world)
    client.force_login(admin_user)
    too_late = lease.starts_at + timedelta(days=settings.LEASE_MAX_TOTAL_DAYS + 1)
    response = lease_change(client, lease, too_late, reason="forever")
    assert response.status_code == 200
    assert "expires_at" in response.context["adminform"].form.errors
    response = lease_change(client, lease, lease.expires_at + timedelta(days=1), reason="")
    assert "reason" in response.context["adminform"].form.errors
    assert Lease.objects.get(pk=lease.pk).expires_at == lease.expires_at
    assert not AuditEvent.objects.filter(verb="lease_corrected").exists()


def test_changing_a_team_group_or_budget_is_audited_with_before_and_after(client, atlas, admin_user):
    other = GroupFactory(name="atlas-engineers")
    client.force_login(admin_user)
    response = client.post(
        reverse("admin:requests_app_team_change", args=[atlas.pk]),
        {"slug": "renamed", "name": atlas.name, "group": other.pk, "budget_cpu": "8", "budget_memory": ""},
    )
    assert response.status_code == 302, response.content
    atlas.refresh_from_db()
    assert (atlas.slug, atlas.group, atlas.budget_cpu) == ("atlas", other, "8")  # the slug is read-only
    event = AuditEvent.objects.get(verb="team_changed")
    assert (event.actor, event.target_type, event.target_id) == (admin_user, "team", str(atlas.pk))
    assert event.detail == "group: 'team-atlas' → 'atlas-engineers'; budget_cpu: '' → '8'"


def test_adding_and_deleting_an_allowed_registry_is_audited(client, admin_user):
    client.force_login(admin_user)
    client.post(reverse("admin:requests_app_allowedregistry_add"), {"prefix": "ghcr.io/acme/", "description": ""})
    registry = AllowedRegistry.objects.get(prefix="ghcr.io/acme/")
    client.post(reverse("admin:requests_app_allowedregistry_delete", args=[registry.pk]), {"post": "yes"})
    assert not AllowedRegistry.objects.exists()
    verbs = list(AuditEvent.objects.filter(target_type="allowedregistry").values_list("verb", "actor_name"))
    assert verbs == [("allowedregistry_created", "ada"), ("allowedregistry_deleted", "ada")]


def test_an_app_template_change_does_not_alter_filed_requests(client, atlas, requester, admin_user):
    template = app_template("web")
    AllowedRegistry.objects.create(prefix="registry.example.org/other/")
    namespace = active_namespace(atlas, requester, name="shop", plan="medium")
    filed = request_submit(
        requester=requester,
        team="atlas",
        kind="app",
        name="storefront",
        environment="dev",
        lease_days=7,
        spec={"namespace": str(namespace.pk), "template": "web", "replicas": 1},
    )

    def deployment(request):
        return next(m for m in request_plan(request=request) if m["kind"] == "Deployment")

    before = deployment(filed)["spec"]["template"]["spec"]["containers"][0]
    frozen = dict(filed.frozen)
    client.force_login(admin_user)
    response = client.post(
        reverse("admin:requests_app_apptemplate_change", args=[template.pk]),
        {
            "name": "Web",
            "description": "",
            "image_repository": "registry.example.org/other/web",
            "default_tag": "2.0.0",
            "container_port": 9090,
            "health_path": "/ready",
            "default_env": '{"LOG_LEVEL": "debug"}',
            "cpu_request": "200m",
            "cpu_limit": "1",
            "memory_request": "256Mi",
            "memory_limit": "512Mi",
            "accepts_database": "on",
            "active": "on",
        },
    )
    assert response.status_code == 302, response.content
    template.refresh_from_db()
    assert template.image_repository == "registry.example.org/other/web"
    filed = ResourceRequest.objects.get(pk=filed.pk)
    assert filed.frozen == frozen
    after = deployment(filed)["spec"]["template"]["spec"]["containers"][0]
    assert after == before
    assert after["image"] == "registry.example.org/platform/web:1.4.2"
    assert "image_repository: 'registry.example.org/platform/web' → 'registry.example.org/other/web'" in (
        AuditEvent.objects.get(verb="apptemplate_changed").detail
    )


def test_the_audit_trail_is_read_only_in_the_admin(client, api, requester, admin_user):
    api.as_(requester).post("/api/v1/requests/", namespace_body(), format="json")
    event = AuditEvent.objects.first()
    client.force_login(admin_user)
    url = reverse("admin:requests_app_auditevent_change", args=[event.pk])
    client.post(url, {"verb": "forged", "detail": "x"})
    assert client.get(reverse("admin:requests_app_auditevent_delete", args=[event.pk])).status_code == 403
    event.refresh_from_db()
    assert event.verb == "submitted"
    with pytest.raises(ValueError, match="append-only"):
        event.save()
