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
