"""The web pages: form, lists, request page, queue — including for outsiders."""

import pytest

from requests_app.models import ResourceRequest

pytestmark = pytest.mark.django_db

FORM = {
    "team": "atlas",
    "name": "checkout",
    "environment": "dev",
    "plan": "medium",
    "lease_days": 14,
    "justification": "load tests",
}


def test_pages_need_a_login(client):
    for url in ["/", "/requests/", "/requests/new/", "/approvals/", "/resources/"]:
        response = client.get(url)
        assert response.status_code == 302 and "/login/" in response["Location"], url


def test_the_form_files_a_request_and_shows_its_page(client, requester):
    client.force_login(requester)
    response = client.post("/requests/new/", FORM)
    filed = ResourceRequest.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/requests/{filed.pk}/"
    page = client.get(response["Location"]).content.decode()
    assert "pending approval" in page.lower()
    assert "platform-approvers" in page
    assert "kind: ResourceQuota" in page  # the plan is on the request page


def test_form_errors_stand_next_to_their_fields_and_nothing_is_filed(client, requester):
    client.force_login(requester)
    response = client.post("/requests/new/", {**FORM, "name": "Bad_Name", "plan": "custom", "cpu": "lots"})
    assert response.status_code == 200
    form = response.context["form"]
    assert "name" in form.errors and "cpu" in form.errors
    assert not ResourceRequest.objects.exists()


def test_an_approver_approves_from_the_queue(client, requester, approver):
    client.force_login(requester)
    client.post("/requests/new/", FORM)
    step = ResourceRequest.objects.get().approval_steps.get()
    client.force_login(approver)
    assert "checkout" in client.get("/approvals/").content.decode()
    client.post(f"/approvals/{step.pk}/decide/", {"verdict": "approve", "comment": ""})
    assert ResourceRequest.objects.get().state == "approved"


def test_an_outsider_gets_404_for_the_request_page(client, requester, outsider):
    client.force_login(requester)
    client.post("/requests/new/", FORM, follow=True)
    filed = ResourceRequest.objects.get()
    client.force_login(outsider)
    assert client.get(f"/requests/{filed.pk}/").status_code == 404
    assert "checkout" not in client.get("/requests/").content.decode()


def test_the_form_shows_the_fields_of_the_chosen_kind(client, requester, atlas):
    from tests.factories import active_namespace, app_template

    active_namespace(atlas, requester)
    app_template("web")
    client.force_login(requester)
    fragment = client.get("/requests/new/?kind=database", HTTP_HX_REQUEST="true").content.decode()
    assert "<html" not in fragment  # htmx gets only the form
    assert 'name="version"' in fragment and 'name="plan"' not in fragment.split('name="version"')[0]
    assert "atlas-checkout" in fragment
    page = client.get("/requests/new/?kind=app").content.decode()
    assert 'name="template"' in page and "Budget left" in page


def test_the_preview_shows_the_plan_or_why_it_would_be_refused(client, requester, atlas):
    from tests.factories import active_namespace

    namespace = active_namespace(atlas, requester)
    client.force_login(requester)
    form = {
        "kind": "database",
        "namespace": str(namespace.pk),
        "name": "orders",
        "environment": "dev",
        "version": "16",
        "plan": "small",
        "storage": "5Gi",
        "lease_days": 14,
    }
    plan = client.post("/requests/preview/", form).content.decode()
    assert "kind: StatefulSet" in plan and "(generated when applied)" in plan
    refused = client.post("/requests/preview/", {**form, "storage": "50Gi"}).content.decode()
    assert "refused" in refused and "quota" in refused
    assert not ResourceRequest.objects.filter(kind="database").exists()


def test_a_database_is_filed_from_its_form(client, requester, atlas):
    from tests.factories import active_namespace

    namespace = active_namespace(atlas, requester)
    client.force_login(requester)
    response = client.post(
        "/requests/new/?kind=database",
        {
            "kind": "database",
            "namespace": str(namespace.pk),
            "name": "orders",
            "environment": "dev",
            "version": "16",
            "plan": "small",
            "storage": "5Gi",
            "lease_days": 14,
        },
    )
    filed = ResourceRequest.objects.get(kind="database")
    assert response.status_code == 302
    assert (filed.team.slug, filed.parent, filed.spec["storage"]) == ("atlas", namespace, "5Gi")


def test_the_catalog_page_lists_templates(client, requester):
    from tests.factories import app_template

    app_template("web")
    client.force_login(requester)
    page = client.get("/catalog/").content.decode()
    assert "registry.example.org/platform/web:1.4.2" in page and "medium" in page


def _app_with_release(atlas, requester):
    from provisioning.models import Release
    from requests_app.models import Resource
    from tests.factories import active_namespace

    namespace = active_namespace(atlas, requester)
    app = active_namespace(atlas, requester, name="shop")
    Resource.objects.filter(pk=app.pk).update(
        kind="app", parent=namespace, spec={"namespace": "checkout", "template": "web", "image_tag": "1.0"}
    )
    Release.objects.create(
        resource=app, number=1, request=app.created_by_request, image_tag="1.0", spec={}, manifests=[]
    )
    return Resource.objects.get(pk=app.pk)


def test_an_app_page_offers_upgrade_and_files_it(client, requester, atlas):
    app = _app_with_release(atlas, requester)
    client.force_login(requester)
    page = client.get(f"/resources/{app.pk}/").content.decode()
    assert "Upgrade" in page and "now running 1.0" in page
    response = client.post(f"/resources/{app.pk}/change/", {"op": "upgrade", "image_tag": "1.1", "justification": "x"})
    filed = ResourceRequest.objects.get(action="upgrade")
    assert response["Location"] == f"/requests/{filed.pk}/"
    assert filed.spec["image_tag"] == "1.1"
    refused = client.post(f"/resources/{app.pk}/change/", {"op": "rollback", "release": "7"}, follow=True)
    assert "under way" in refused.content.decode()  # the upgrade is still pending approval


def test_a_reclaimed_resource_page_offers_restore(client, requester, atlas):
    from requests_app.models import Resource
    from tests.factories import active_namespace

    gone = active_namespace(atlas, requester, name="old")
    Resource.objects.filter(pk=gone.pk).update(state="reclaimed")
    ResourceRequest.objects.filter(pk=gone.created_by_request_id).update(state="reclaimed")
    client.force_login(requester)
    assert "Restore" in client.get(f"/resources/{gone.pk}/").content.decode()
    response = client.post(f"/resources/{gone.pk}/restore/")
    restored = ResourceRequest.objects.get(name="old", state__in=["pending_approval", "approved"])
    assert response["Location"] == f"/requests/{restored.pk}/"
    assert restored.frozen["restore_of"] == str(gone.pk)
