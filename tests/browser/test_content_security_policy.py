"""Every main page works under the Content-Security-Policy, in a real browser: no violation, no script
error, no failed asset, and nothing fetched from another origin (the service runs without internet)."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from leases.services.opening import lease_open
from requests_app.services import request_submit
from tests.browser.conftest import log_in
from tests.factories import UserFactory, active_namespace, team

# Reports each violation to the test; Playwright's init scripts are not subject to the page's policy.
REPORT_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (e) =>
  window.reportCspViolation(`${e.violatedDirective} blocked ${e.blockedURI || "inline"} in ${e.documentURI}`));
"""


class Watch:
    """What went wrong in the browser while a test walked the pages."""

    def __init__(self, page, base_url: str):
        self.problems: list[str] = []
        origin = urlsplit(base_url).netloc
        page.expose_function("reportCspViolation", lambda text: self.problems.append(f"CSP: {text}"))
        page.add_init_script(REPORT_VIOLATIONS)
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.problems.append(f"script error: {error}"))
        page.on(
            "response",
            lambda r: self.problems.append(f"{r.status} for {r.url}") if r.status >= 400 else None,
        )

        def only_this_site(route):
            if urlsplit(route.request.url).netloc == origin or route.request.url.startswith("data:"):
                route.continue_()
            else:
                self.problems.append(f"another origin: {route.request.url}")
                route.abort()

        page.route("**/*", only_this_site)

    def _console(self, message) -> None:
        text = message.text
        if message.type == "error" or "Content Security Policy" in text or "Content-Security-Policy" in text:
            self.problems.append(f"console {message.type}: {text}")


@pytest.fixture
def site(live_server):
    """A team with an active, leased namespace, a request waiting for a platform approver, and an admin."""
    atlas = team("atlas")
    dana = UserFactory(username="dana", first_name="Dana", groups=["team-atlas"])
    UserFactory(username="frank", groups=["platform-approvers"])
    UserFactory(username="ada", is_staff=True, is_superuser=True, groups=["leasehold-admins"])
    namespace = active_namespace(atlas, dana, name="checkout", plan="small")
    lease_open(resource=namespace)
    waiting = request_submit(
        requester=dana,
        team="atlas",
        kind="namespace",
        name="loadtest",
        environment="dev",
        lease_days=14,
        justification="load tests",
        spec={"plan": "medium"},
    )
    assert waiting.state == "pending_approval"
    return {"url": live_server.url, "namespace": namespace, "waiting": waiting}


@pytest.mark.django_db(transaction=True)
def test_the_main_pages_load_without_any_policy_violation(site, browser, screenshot):
    url = site["url"]
    page = browser.new_page()
    page.set_default_timeout(15_000)
    watch = Watch(page, url)

    log_in(page, url, "dana")  # the login page, then home
    page.wait_for_selector("h1 >> text=Hello")

    page.goto(f"{url}/requests/new/")
    assert not page.is_visible("#id_cpu")  # site.js hides the quantities of a custom plan
    page.select_option("#id_plan", "custom")
    assert page.is_visible("#id_cpu")
    page.select_option("#id_kind", "database")  # htmx swaps in the database fields
    page.wait_for_selector("#id_version")
    assert page.is_visible("#id_storage")  # a database's storage is never hidden
    page.fill("#id_name", "orders")
    page.fill("#id_storage", "5Gi")
    page.click("text=Preview plan")  # htmx posts the form and swaps in the plan
    page.wait_for_selector("#plan .summary")  # the summary leads; the YAML is one click away
    page.click("#plan details > summary")
    assert "kind: StatefulSet" in page.inner_text("#plan pre")

    page.goto(f"{url}/requests/{site['waiting'].pk}/")
    page.wait_for_selector("#approval")
    page.goto(f"{url}/resources/{site['namespace'].pk}/")
    page.wait_for_selector("form[data-confirm] >> text=Release now")
    page.goto(f"{url}/leases/")
    assert page.locator(".chart-bar svg rect").count() == 12
    # The chart names both axes and has a text alternative (and its figures as a table, one click away).
    assert page.is_visible("text=Leases expiring (count)") and page.is_visible("text=Weeks from today")
    assert "week 1, 0" in page.get_attribute(".chart[role=img]", "aria-label")
    page.click("text=The same figures as a table")
    assert page.locator("details table tbody tr").count() == 12
    screenshot(page, "lease-dashboard")
    # The lists: filtered, paged by their cursor links, and empty, all with their styles and scripts from files.
    page.goto(f"{url}/resources/?expiring_within=7&environment=dev")
    page.wait_for_selector("td.empty >> text=Nothing matches these filters")
    page.goto(f"{url}/requests/?environment=dev&search=load")
    page.wait_for_selector("table >> text=loadtest")
    screenshot(page, "requests-filtered")

    page.click("header >> text=Log out")
    log_in(page, url, "frank")
    page.goto(f"{url}/approvals/")
    page.check("input[data-select-all=steps]")
    assert page.is_checked(f"input[name=steps][value='{site['waiting'].approval_steps.get().pk}']")

    page.click("header >> text=Log out")
    log_in(page, url, "ada")
    page.goto(f"{url}/admin/")
    page.wait_for_selector("#site-name")

    assert watch.problems == []


@pytest.mark.django_db(transaction=True)
def test_the_api_docs_render_from_the_service_alone(live_server, browser):
    page = browser.new_page()
    page.set_default_timeout(15_000)
    watch = Watch(page, live_server.url)
    page.goto(f"{live_server.url}/api/docs/")
    # Swagger UI drew the schema: its title and the operations, all from this site's files.
    page.wait_for_selector(".swagger-ui .info .title >> text=Leasehold API")
    page.wait_for_selector(".opblock-summary-path >> text=/api/v1/requests/")
    assert watch.problems == []
