"""Plans and decisions in a real browser (Debian's Chromium): a requester previews a plan, reads its summary
and who must approve it, and files it; an approver sees it waiting on the home page, reads the same
summary in the queue, opens the objects page and approves. Screenshots of each page are saved under
artifacts/screenshots/<test>/."""

from __future__ import annotations

import pytest

from approvals.models import ApprovalStep
from requests_app.models import ResourceRequest
from tests.browser.conftest import log_in
from tests.factories import UserFactory, active_namespace, team


def watch_errors(page) -> list[str]:
    """Script errors (such as "Cannot set properties of null") and failed responses, as they happen. The
    browser's own request for /favicon.ico is not the pages' doing."""
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"script error: {error}"))
    page.on(
        "response",
        lambda r: (
            problems.append(f"{r.status} for {r.url}")
            if r.status >= 400 and not r.url.endswith("/favicon.ico")
            else None
        ),
    )
    return problems


@pytest.mark.django_db(transaction=True)
def test_a_plan_is_previewed_with_its_approvers_filed_and_approved_from_the_queue(
    live_server, browser_page, screenshot
):
    atlas = team("atlas")
    UserFactory(username="dana", first_name="Dana", groups=["team-atlas"])
    UserFactory(username="frank", groups=["platform-approvers"])
    namespace = active_namespace(atlas, UserFactory(username="owner", groups=["team-atlas"]), name="checkout")
    url, page = live_server.url, browser_page
    problems = watch_errors(page)

    log_in(page, url, "dana")
    page.goto(f"{url}/requests/new/")
    page.select_option("#id_kind", "database")
    page.wait_for_selector("#id_version")
    page.fill("#id_name", "orders")
    page.fill("#id_storage", "5Gi")
    page.click("text=Preview plan")
    page.wait_for_selector("#plan .summary")
    plan = page.inner_text("#plan")
    assert "New database atlas-checkout / orders" in plan
    assert "atlas-checkout" in page.inner_text("#plan dl.facts")
    assert "What it takes of namespace atlas-checkout's quota" in plan
    assert "Who must approve" in plan and "platform: 1 approval from platform-approvers" in plan
    assert not page.is_visible("#plan pre")  # the YAML is one click away
    screenshot(page, "preview-summary")
    page.click("#plan details > summary")
    assert "kind: StatefulSet" in page.inner_text("#plan pre")
    screenshot(page, "preview-yaml")

    page.click("text=File request")
    page.wait_for_selector("#summary")
    filed = ResourceRequest.objects.get(name="orders")
    assert "atlas-checkout" in page.inner_text("#summary") and str(namespace.pk) not in page.inner_text("#summary")
    step = ApprovalStep.objects.get(request=filed)
    assert (step.name, step.group) == ("platform", "platform-approvers")  # what the preview named
    screenshot(page, "request-page")

    page.click("header >> text=Log out")
    log_in(page, url, "frank")
    assert "1 step waits for you" in page.inner_text("#approvals-waiting")
    screenshot(page, "approver-home")
    page.click("#approvals-waiting >> text=Open the approval queue")
    page.wait_for_selector("#queue")
    row = page.inner_text("#queue tbody tr")
    assert "New database atlas-checkout / orders" in row and "Namespace: atlas-checkout" in row
    screenshot(page, "queue")

    page.click("#queue >> text=objects")
    page.wait_for_selector("#objects")
    assert page.url == f"{url}/requests/{filed.pk}/objects/"
    assert "StatefulSet" in page.inner_text("#objects table")
    screenshot(page, "objects")
    page.go_back()

    page.click("#queue >> button:has-text('Approve')")
    page.wait_for_selector(".messages")
    assert "Approved atlas-checkout / orders (platform)." in page.inner_text(".messages")
    screenshot(page, "approved")
    filed.refresh_from_db()
    assert filed.state == "approved"
    assert problems == []


@pytest.mark.django_db(transaction=True)
def test_custom_quantities_with_an_error_hide_with_it_when_a_plan_is_chosen_again(
    live_server, browser_page, screenshot
):
    team("atlas")
    UserFactory(username="dana", groups=["team-atlas"])
    url, page = live_server.url, browser_page
    problems = watch_errors(page)
    log_in(page, url, "dana")
    page.goto(f"{url}/requests/new/")
    page.fill("#id_name", "loadtest")
    page.select_option("#id_plan", "custom")
    page.fill("#id_cpu", "lots")
    page.fill("#id_memory", "4Gi")
    page.fill("#id_storage", "20Gi")
    page.click("text=File request")
    page.wait_for_selector("[data-field=cpu] .errorlist")
    assert page.is_visible("#id_cpu") and page.is_visible("[data-field=cpu] .errorlist")
    screenshot(page, "custom-with-error")

    page.select_option("#id_plan", "small")
    assert not page.is_visible("#id_cpu")
    assert not page.is_visible("[data-field=cpu] .errorlist")  # no stale error left behind
    screenshot(page, "back-to-a-plan")
    page.select_option("#id_plan", "custom")
    assert page.is_visible("#id_cpu")

    page.select_option("#id_plan", "medium")
    page.click("text=File request")
    page.wait_for_selector("#summary")
    assert ResourceRequest.objects.get(name="loadtest").spec == {"plan": "medium"}
    assert problems == []
