"""The three personas walk the portal in a real browser (Debian's Chromium), against the real cluster:
a requester files a namespace, a database and an app bound to it, each with its summary and who must
approve it in the preview; an approver decides from the queue; the requester sees the relations on the
resource pages, searches and filters a list, extends and releases; an admin finds it all in the dashboard
and Django admin. The worker's service runs between the steps, as a Celery worker would. Every page is
saved under artifacts/screenshots/<test>/ for a person to look at (issue 14)."""

from __future__ import annotations

import pytest

from approvals.services import step_decide
from provisioning.services.provision import request_provision
from requests_app.models import Resource, ResourceRequest
from tests.browser.conftest import log_in
from tests.browser.test_plans_and_decisions import watch_errors
from tests.factories import UserFactory, app_template, team
from tests.integration.conftest import cleanup_namespaces, core, kube_api  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.integration]


def preview_and_file(page, screenshot, label: str) -> str:
    """Preview the plan, check it leads with a summary and who must approve, file it; the preview's text."""
    page.click("text=Preview plan")
    page.wait_for_selector("#plan .summary")
    plan = page.inner_text("#plan")
    assert "Who must approve" in plan or "Approved at once" in plan, plan
    assert not page.is_visible("#plan pre")  # the YAML stays one click away
    screenshot(page, f"{label}-preview")
    page.click("text=File request")
    page.wait_for_selector("#summary")
    screenshot(page, f"{label}-filed")
    return plan


def provisioned(name: str) -> ResourceRequest:
    """What the worker does with an approved request, here and now; the request, active."""
    filed = ResourceRequest.objects.get(name=name)
    request_provision(request_id=filed.pk)
    filed.refresh_from_db()
    assert filed.state == "active", filed.error
    return filed


def test_requester_approver_and_admin_walk_through_the_portal(
    live_server,
    browser_page,
    screenshot,
    unique_name,
    cleanup_namespaces,  # noqa: F811  (the fixture)
):
    team("atlas")
    UserFactory(username="dana", first_name="Dana", groups=["team-atlas"])
    frank = UserFactory(username="frank", groups=["platform-approvers"])
    UserFactory(username="ada", is_staff=True, is_superuser=True)
    app_template("web")
    space = unique_name
    namespace_name = f"atlas-{space}"
    cleanup_namespaces.append(namespace_name)
    url, page = live_server.url, browser_page
    problems = watch_errors(page)

    # The requester: a small dev namespace is approved at once, and says so before it is filed.
    log_in(page, url, "dana")
    screenshot(page, "requester-home")
    page.goto(f"{url}/requests/new/")
    page.fill("#id_name", space)
    page.select_option("#id_plan", "small")
    page.fill("#id_lease_days", "7")
    assert "Approved at once" in preview_and_file(page, screenshot, "namespace")
    namespace = provisioned(space).resource
    page.reload()
    assert "Active" in page.inner_text("h1")
    screenshot(page, "namespace-active")

    # A database in it needs the platform team; its summary names the namespace it goes into.
    page.goto(f"{url}/requests/new/?kind=database")
    page.wait_for_selector("#id_version")
    page.fill("#id_name", "orders")
    page.select_option("#id_namespace", str(namespace.pk))
    page.fill("#id_storage", "5Gi")
    plan = preview_and_file(page, screenshot, "database")
    assert f"New database {namespace_name} / orders" in plan and "platform" in plan

    # The approver: the home page says what waits, the queue shows the same summary; approve.
    page.click("header >> text=Log out")
    log_in(page, url, "frank")
    assert "1 step waits for you" in page.inner_text("#approvals-waiting")
    screenshot(page, "approver-home")
    page.goto(f"{url}/approvals/")
    page.wait_for_selector("#queue")
    assert f"{namespace_name} / orders" in page.inner_text("#queue tbody tr")
    screenshot(page, "queue")
    page.click("#queue >> button:has-text('Approve')")
    page.wait_for_selector(".messages")
    assert f"Approved {namespace_name} / orders (platform)." in page.inner_text(".messages")
    screenshot(page, "queue-approved")
    database = provisioned("orders").resource

    # The requester again: an app bound to the database, approved the same way.
    page.click("header >> text=Log out")
    log_in(page, url, "dana")
    page.goto(f"{url}/requests/new/?kind=app")
    page.wait_for_selector("#id_template")
    page.fill("#id_name", "shop")
    page.select_option("#id_namespace", str(namespace.pk))
    page.select_option("#id_template", "web")
    page.select_option("#id_database", str(database.pk))
    page.fill("#id_host", f"{space}.apps.example.org")
    plan = preview_and_file(page, screenshot, "app")
    assert f"{namespace_name} / orders" in plan  # the bound database by its name, not its id
    assert str(database.pk) not in page.inner_text("#summary")
    for step in ResourceRequest.objects.get(name="shop").approval_steps.filter(state="pending"):
        step_decide(step_id=step.pk, user=frank, verdict="approve")  # as in the queue above
    app = provisioned("shop").resource

    # Relations: the namespace lists its database and app; the app names its database and URL; the
    # database lists the app bound to it.
    page.goto(f"{url}/resources/{namespace.pk}/")
    children = page.inner_text("main")
    assert f"{namespace_name} / orders" in children and f"{namespace_name} / shop" in children
    screenshot(page, "namespace-with-children")
    page.goto(f"{url}/resources/{app.pk}/")
    app_page = page.inner_text("main")
    assert f"{namespace_name} / orders" in app_page and f"https://{space}.apps.example.org/" in app_page
    screenshot(page, "app")
    page.goto(f"{url}/resources/{database.pk}/")
    assert f"{namespace_name} / shop" in page.inner_text("main")
    screenshot(page, "database")

    # Search and filter a list.
    page.goto(f"{url}/resources/?search=orders&kind=database")
    rows = page.inner_text("table")
    assert f"{namespace_name} / orders" in rows and f"{namespace_name} / shop" not in rows
    screenshot(page, "resources-filtered")

    # Extend the namespace's lease from its page, then release the app.
    page.goto(f"{url}/resources/{namespace.pk}/")
    before = Resource.objects.get(pk=namespace.pk).lease.expires_at
    page.fill("form.extend-form input[name=days]", "3")
    page.fill("form.extend-form input[name=justification]", "The load test runs three more days.")
    page.click("form.extend-form button")
    page.wait_for_selector(".messages")
    screenshot(page, "namespace-extended")
    assert Resource.objects.get(pk=namespace.pk).lease.expires_at > before
    page.goto(f"{url}/resources/{app.pk}/")
    page.on("dialog", lambda dialog: dialog.accept())
    page.click("button:has-text('Release now')")
    page.wait_for_selector(".messages")
    screenshot(page, "app-released")
    app.refresh_from_db()
    assert app.state in ("reclaiming", "reclaimed")

    # The admin: the lease dashboard and Django admin name things the same way.
    page.click("header >> text=Log out")
    log_in(page, url, "ada")
    page.goto(f"{url}/leases/")
    screenshot(page, "admin-dashboard")
    page.goto(f"{url}/admin/requests_app/resource/")
    assert f"{namespace_name} / orders" in page.inner_text("#result_list")
    screenshot(page, "admin-resources")
    assert problems == []
