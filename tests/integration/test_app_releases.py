"""Day 2 for apps on the real API server: upgrade to another image tag, roll back to an earlier release."""

import pytest
from kubernetes import client

from provisioning.models import Release
from provisioning.services import app_rollback_file, app_upgrade_file
from requests_app.errors import InvalidState, ValidationFailed
from requests_app.models import AuditEvent, Resource
from requests_app.services import request_submit
from tests.factories import app_template
from tests.integration.conftest import approve_and_provision

pytestmark = pytest.mark.django_db


@pytest.fixture
def app(approved_namespace, requester, approver):
    ns_request = approve_and_provision(approved_namespace(), approver)
    app_template("web")
    filed = request_submit(
        requester=requester,
        team="atlas",
        kind="app",
        name="shop",
        environment="dev",
        lease_days=7,
        justification="t",
        spec={"namespace": str(ns_request.resource_id), "template": "web", "replicas": 1},
    )
    return Resource.objects.get(pk=approve_and_provision(filed, approver).resource_id)


def image(kube_api, resource):
    deployment = client.AppsV1Api(kube_api).read_namespaced_deployment("shop", resource.namespace_name)
    return deployment.spec.template.spec.containers[0].image


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


def test_a_rollback_to_a_release_from_before_the_token_was_turned_off_keeps_it_off(app, requester, approver, kube_api):
    # Release 1 as an older Leasehold stored it: the pod template mounted the service account token.
    first = Release.objects.get(resource=app, number=1)
    manifests = first.manifests
    del manifests[0]["spec"]["template"]["spec"]["automountServiceAccountToken"]
    Release.objects.filter(pk=first.pk).update(manifests=manifests)
    approve_and_provision(
        app_upgrade_file(resource=app, actor=requester, image_tag="2.0.0", justification=""), approver
    )

    approve_and_provision(app_rollback_file(resource=app, actor=requester, release=1, justification=""), approver)

    deployment = client.AppsV1Api(kube_api).read_namespaced_deployment("shop", app.namespace_name)
    assert deployment.spec.template.spec.containers[0].image == "registry.example.org/platform/web:1.4.2"
    assert deployment.spec.template.spec.automount_service_account_token is False
