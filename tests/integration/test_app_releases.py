"""Day 2 for apps on the real API server: upgrade to another image tag, roll back to an earlier release."""

import pytest
from kubernetes import client

from leases.services.extension import lease_extend
from provisioning.models import ManagedObject, Release
from provisioning.renderers import ANNOTATION_LEASE_EXPIRES, rfc3339
from provisioning.services.reconcile import resource_reconcile, resources_reconcile
from provisioning.services.releases import app_rollback_file, app_upgrade_file
from requests_app.errors import InvalidState, ValidationFailed
from requests_app.models import AuditEvent, Resource
from tests.integration.conftest import approve_and_provision, file_app

pytestmark = pytest.mark.django_db


@pytest.fixture
def app(approved_namespace, requester, approver):
    return file_app(approve_and_provision(approved_namespace(), approver), requester, approver)


def deployment_of(kube_api, resource):
    return client.AppsV1Api(kube_api).read_namespaced_deployment("shop", resource.namespace_name)


def image(kube_api, resource):
    return deployment_of(kube_api, resource).spec.template.spec.containers[0].image


DRIFT_VERBS = ("object_restored", "drift_detected")
WEB = "registry.example.org/platform/web"


def test_an_upgrade_then_a_rollback_reapply_exactly_what_ran(app, requester, approver, kube_api, api):
    assert image(kube_api, app) == "registry.example.org/platform/web:1.4.2"
    first = Release.objects.get(resource=app)
    assert (first.number, first.image_tag) == (1, "1.4.2")

    upgrade = app_upgrade_file(resource=app, actor=requester, image_tag="2.0.0", justification="new checkout")
    assert (upgrade.action, upgrade.state, upgrade.resource_id) == ("upgrade", "pending_approval", app.pk)
    approve_and_provision(upgrade, approver)
    app.refresh_from_db()
    assert image(kube_api, app) == "registry.example.org/platform/web:2.0.0"
    assert app.spec["image_tag"] == "2.0.0"
    assert app.state == "active"

    rollback = app_rollback_file(resource=app, actor=requester, release=1, justification="2.0.0 is broken")
    approve_and_provision(rollback, approver)
    app.refresh_from_db()
    assert image(kube_api, app) == "registry.example.org/platform/web:1.4.2"
    third = Release.objects.get(resource=app, number=3)
    assert third.rolled_back_from == 1

    def without_stamps(manifests):
        out = []
        for m in manifests:
            meta = {k: v for k, v in m["metadata"].items() if k != "annotations"}
            out.append({**m, "metadata": meta})
        return out

    assert without_stamps(third.manifests) == without_stamps(first.manifests)
    assert AuditEvent.objects.filter(resource=app, verb="rolled_back").count() == 1
    body = api.as_(requester).get(f"/api/v1/resources/{app.pk}/").json()
    assert [(r["number"], r["image_tag"]) for r in body["releases"]] == [(3, "1.4.2"), (2, "2.0.0"), (1, "1.4.2")]


def test_bad_day_two_requests_are_refused(app, requester, outsider, api, approved_namespace):
    with pytest.raises(ValidationFailed):
        app_upgrade_file(resource=app, actor=requester, image_tag="bad tag", justification="")
    with pytest.raises(ValidationFailed):
        app_upgrade_file(resource=app, actor=requester, image_tag="1.4.2", justification="same")
    with pytest.raises(ValidationFailed):
        app_rollback_file(resource=app, actor=requester, release=9, justification="")
    app_upgrade_file(resource=app, actor=requester, image_tag="2.0.0", justification="")
    with pytest.raises(InvalidState):
        app_upgrade_file(resource=app, actor=requester, image_tag="2.0.1", justification="")
    api.as_(requester)
    assert api.post(f"/api/v1/resources/{app.pk}/upgrade/", {"image_tag": "2.0.1"}, format="json").status_code == 409
    assert api.post(f"/api/v1/resources/{app.pk}/rollback/", {"release": 0}, format="json").status_code == 400
    assert (
        api.as_(outsider).post(f"/api/v1/resources/{app.pk}/upgrade/", {"image_tag": "3"}, format="json").status_code
        == 404
    )
    namespace = app.parent
    assert (
        api.as_(requester)
        .post(f"/api/v1/resources/{namespace.pk}/upgrade/", {"image_tag": "3"}, format="json")
        .status_code
        == 409
    )


def upgrade(app, requester, approver, tag):
    approve_and_provision(app_upgrade_file(resource=app, actor=requester, image_tag=tag, justification="t"), approver)


def rollback(app, requester, approver, release):
    approve_and_provision(
        app_rollback_file(resource=app, actor=requester, release=release, justification="t"), approver
    )


def test_an_extension_keeps_the_upgraded_release_running(app, requester, approver, kube_api):
    upgrade(app, requester, approver, "2.2.0")
    assert image(kube_api, app) == f"{WEB}:2.2.0"

    outcome, _ = lease_extend(resource=app, actor=requester, days=1, justification="one more day")

    assert outcome == "extended"
    app.refresh_from_db()
    deployment = deployment_of(kube_api, app)
    assert deployment.spec.template.spec.containers[0].image == f"{WEB}:2.2.0"
    assert deployment.metadata.annotations[ANNOTATION_LEASE_EXPIRES] == rfc3339(app.lease_expires_at)


def test_reconcile_passes_keep_an_upgrade_and_find_no_drift(app, requester, approver, kube_api):
    upgrade(app, requester, approver, "2.2.0")
    for _ in range(3):
        assert resource_reconcile(resource_id=app.pk) == []
    assert image(kube_api, app) == f"{WEB}:2.2.0"
    assert not AuditEvent.objects.filter(resource=app, verb__in=DRIFT_VERBS).exists()


def test_an_extension_and_reconcile_passes_keep_a_rollback(app, requester, approver, kube_api):
    upgrade(app, requester, approver, "2.1.0")
    upgrade(app, requester, approver, "2.2.0")
    rollback(app, requester, approver, 2)
    assert image(kube_api, app) == f"{WEB}:2.1.0"

    assert lease_extend(resource=app, actor=requester, days=1, justification="one more day")[0] == "extended"
    for _ in range(3):
        assert resource_reconcile(resource_id=app.pk) == []

    assert image(kube_api, app) == f"{WEB}:2.1.0"
    assert not AuditEvent.objects.filter(resource=app, verb__in=DRIFT_VERBS).exists()


def test_ten_reconcile_passes_over_an_untouched_app_write_no_audit_row(
    approved_namespace, requester, approver, kube_api
):
    # Its lease (30 days) ends with its namespace's (14 days): the objects are stamped with that.
    app = file_app(approve_and_provision(approved_namespace(), approver), requester, approver, lease_days=30)
    assert deployment_of(kube_api, app).metadata.annotations[ANNOTATION_LEASE_EXPIRES] == rfc3339(
        Resource.objects.get(pk=app.pk).lease_expires_at
    )
    before = AuditEvent.objects.count()
    for _ in range(10):
        report = resources_reconcile()
        assert (report.findings, report.errors) == ([], [])
    assert AuditEvent.objects.count() == before
    assert not ManagedObject.objects.filter(resource=app).exclude(drift="").exists()


def test_a_hand_edit_of_an_owned_field_is_restored_and_audited_once(app, kube_api):
    apps = client.AppsV1Api(kube_api)
    container = {"name": "app", "image": "evil.example.org/miner:1"}
    apps.patch_namespaced_deployment(
        "shop", app.namespace_name, {"spec": {"template": {"spec": {"containers": [container]}}}}
    )
    assert image(kube_api, app) == "evil.example.org/miner:1"

    findings = resource_reconcile(resource_id=app.pk)

    assert len(findings) == 1, findings
    assert "spec.template.spec.containers[0].image" in findings[0]
    assert image(kube_api, app) == f"{WEB}:1.4.2"
    restored = AuditEvent.objects.filter(resource=app, verb="object_restored")
    assert [e.detail.split(":")[0] for e in restored] == [f"Deployment {app.namespace_name}/shop"]
    # Converged: later passes find nothing and write nothing.
    for _ in range(2):
        assert resource_reconcile(resource_id=app.pk) == []
    assert restored.count() == 1


def test_a_release_from_before_the_token_was_turned_off_is_applied_again_with_it_off(
    app, requester, approver, kube_api
):
    # Release 1 as an older Leasehold stored it: the pod template mounted the service account token.
    first = Release.objects.get(resource=app, number=1)
    manifests = first.manifests
    del manifests[0]["spec"]["template"]["spec"]["automountServiceAccountToken"]
    Release.objects.filter(pk=first.pk).update(manifests=manifests)

    # The reconcile re-applies the newest release: with the token still off, so nothing to restore.
    assert resource_reconcile(resource_id=app.pk) == []
    assert deployment_of(kube_api, app).spec.template.spec.automount_service_account_token is False

    upgrade(app, requester, approver, "2.0.0")
    rollback(app, requester, approver, 1)
    deployment = deployment_of(kube_api, app)
    assert deployment.spec.template.spec.containers[0].image == f"{WEB}:1.4.2"
    assert deployment.spec.template.spec.automount_service_account_token is False
