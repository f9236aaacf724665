"""A database and an app appear under their `<namespace> / <name>` names (CONTRACT.md §6) on the request
list, the resource pages and the approval queue, in a real browser (Debian's Chromium)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from requests_app.services import request_submit
from tests.factories import LeaseFactory, UserFactory, active_child, active_namespace, app_template, team

from .conftest import log_in


@pytest.mark.django_db(transaction=True)
def test_databases_and_apps_are_named_by_namespace_and_name_on_every_page(live_server, browser, screenshot, settings):
    settings.AUTHENTICATION_BACKENDS = ["django.contrib.auth.backends.ModelBackend"]
    atlas = team("atlas")
    dana = UserFactory(username="dana", first_name="Dana", groups=["team-atlas"])
    UserFactory(username="frank", groups=["platform-approvers"])
    app_template("web")
    web = active_namespace(atlas, dana, name="web", plan="large")
    # Live already: a database and an app bound to it, on leases.
    orders = active_child(
        web,
        "database",
        "orders",
        {"namespace": str(web.pk), "engine": "postgres", "version": "16", "plan": "small", "storage": "5Gi"},
        frozen={"provider": "statefulset"},
    )
    shop = active_child(
        web, "app", "shop", {"namespace": str(web.pk), "template": "web", "replicas": 1, "database": str(orders.pk)}
    )
    now = timezone.now()
    for resource in (web, orders, shop):
        LeaseFactory(resource=resource, expires_at=now + timedelta(days=10))
    # Waiting for approval: another database and app in the same namespace.
    for kind, name, spec in (
        ("database", "ledger", {"engine": "postgres", "version": "16", "plan": "small", "storage": "5Gi"}),
        ("app", "admin", {"template": "web", "replicas": 1}),
    ):
        request_submit(
            requester=dana,
            team="atlas",
            kind=kind,
            name=name,
            environment="dev",
            lease_days=7,
            justification="names in a browser",
            spec={"namespace": str(web.pk), **spec},
        )

    requester_page = browser.new_page()
    requester_page.set_default_timeout(15_000)
    log_in(requester_page, live_server.url, "dana")

    requester_page.goto(f"{live_server.url}/requests/")
    rows = requester_page.inner_text("table")
    screenshot(requester_page, "request-list")
    for title in (
        "create database atlas-web / orders",
        "create app atlas-web / shop",
        "create database atlas-web / ledger",
        "create app atlas-web / admin",
        "create namespace atlas-web",
    ):
        assert title in rows, title
    assert "atlas-orders" not in rows and "just now" in rows

    requester_page.goto(f"{live_server.url}/resources/")
    rows = requester_page.inner_text("table")
    screenshot(requester_page, "resource-list")
    assert "atlas-web / orders" in rows and "atlas-web / shop" in rows

    requester_page.click("text=atlas-web / orders")
    requester_page.wait_for_url(f"{live_server.url}/resources/{orders.pk}/")
    heading = requester_page.inner_text("h1")
    screenshot(requester_page, "database-page")
    assert heading.startswith("Database atlas-web / orders")
    assert requester_page.title() == "database atlas-web / orders · Leasehold"
    assert "not extended yet" in requester_page.inner_text("main")

    requester_page.goto(f"{live_server.url}/resources/{shop.pk}/")
    screenshot(requester_page, "app-page")
    assert requester_page.inner_text("h1").startswith("App atlas-web / shop")

    approver_page = browser.new_page()
    approver_page.set_default_timeout(15_000)
    log_in(approver_page, live_server.url, "frank")
    approver_page.goto(f"{live_server.url}/approvals/")
    queue = approver_page.inner_text("#queue")
    screenshot(approver_page, "queue")
    assert "atlas-web / ledger" in queue and "atlas-web / admin" in queue
    assert "create database" in queue and "create app" in queue
    assert "atlas-ledger" not in queue and "atlas/ledger" not in queue
    approver_page.click("#queue >> text=atlas-web / ledger")
    approver_page.wait_for_selector("h1")
    screenshot(approver_page, "request-page")
    assert approver_page.inner_text("h1").startswith("Create database atlas-web / ledger")
    assert "step opened" in approver_page.inner_text("main")  # the timeline's verbs are words
