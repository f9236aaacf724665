"""The approver's queue and the approval emails name a database or an app `<namespace> / <name>`
(CONTRACT.md §6), and a name that is taken is refused with the kind that holds it."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from approvals.services import step_decide
from requests_app.errors import ValidationFailed
from requests_app.services import request_submit
from tests.factories import active_namespace, app_template

from .conftest import pending_step

pytestmark = pytest.mark.django_db


@pytest.fixture
def file_workload(requester, atlas):
    """File a database or an app request into namespace `atlas-<namespace>` (made active on first use)."""
    app_template("web")
    namespaces: dict = {}

    def file(kind: str, name: str, namespace: str = "web"):
        if namespace not in namespaces:
            namespaces[namespace] = active_namespace(atlas, requester, name=namespace, plan="large")
        ns = str(namespaces[namespace].pk)
        spec = (
            {"namespace": ns, "engine": "postgres", "version": "16", "plan": "small", "storage": "5Gi"}
            if kind == "database"
            else {"namespace": ns, "template": "web", "replicas": 1}
        )
        return request_submit(
            requester=requester,
            team="atlas",
            kind=kind,
            name=name,
            environment="dev",
            lease_days=7,
            justification="tests",
            spec=spec,
        )

    return file


def test_the_queue_names_a_database_and_an_app_by_namespace_and_name(client, approver, file_workload):
    file_workload("database", "orders")
    file_workload("app", "shop")
    client.force_login(approver)
    queue = client.get(reverse("approval-queue")).content.decode()
    assert "atlas-web / orders" in queue and "atlas-web / shop" in queue
    assert 'aria-label="Select atlas-web / orders"' in queue
    assert "create database" in queue and "create app" in queue
    assert "atlas-orders" not in queue and "atlas/orders" not in queue and "atlas/shop" not in queue
    assert "7 days" in queue and "just now" in queue


def test_the_queue_reads_the_names_without_a_query_per_row(client, approver, file_workload):
    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get(reverse("approval-queue")).status_code == 200
        return len(captured)

    client.force_login(approver)
    file_workload("database", "orders")
    file_workload("app", "shop")  # each kind's summary reads what it needs once per page (an app: templates)
    before = queries()
    for i in range(4):
        file_workload("database", f"orders{i}", namespace=f"web{i}")
        file_workload("app", f"shop{i}", namespace=f"web{i}")
    assert queries() == before


def test_the_approval_mails_name_the_database_by_namespace_and_name(
    file_workload, approver, requester, mailoutbox, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        request = file_workload("database", "orders")
    asked = next(m for m in mailoutbox if m.to == ["frank@example.org"])
    assert asked.subject == "[Leasehold] Approval needed (platform): create database atlas-web / orders (dev)"
    assert (
        "dana asks to create database atlas-web / orders in dev on cluster default (small, 5Gi, 7 days)." in asked.body
    )

    mailoutbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        step_decide(step_id=pending_step(request).pk, user=approver, verdict="reject", comment="use the shared one")
    (decision,) = mailoutbox
    assert decision.subject == "[Leasehold] Rejected by frank: create database atlas-web / orders (dev)"
    assert (
        'frank rejected the "platform" step of your request to create database atlas-web / orders (dev).'
        in decision.body
    )


def test_a_taken_name_is_refused_with_the_kind_that_holds_it(file_workload):
    file_workload("database", "orders")
    with pytest.raises(ValidationFailed) as refused:
        file_workload("app", "orders")
    assert refused.value.errors["name"] == ["Team atlas already has a database named “orders” in atlas-web."]
    file_workload("app", "shop")
    with pytest.raises(ValidationFailed) as refused:
        file_workload("app", "shop")
    assert refused.value.errors["name"] == ["Team atlas already has an app named “shop” in atlas-web."]
