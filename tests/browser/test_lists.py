"""A developer searches and filters the request and resource lists, pages through them and meets the
empty states, in a real browser, under the Content-Security-Policy; a screenshot of each step is saved."""

from __future__ import annotations

import pytest

from requests_app.models import Resource, ResourceRequest
from tests.browser.conftest import log_in
from tests.browser.test_content_security_policy import Watch
from tests.factories import UserFactory, active_namespace, team


def rows(page) -> list[str]:
    """The first cell of each row of the list's table (empty states included)."""
    return [text.strip() for text in page.locator("table tbody tr td:first-child").all_inner_texts()]


@pytest.mark.django_db(transaction=True)
def test_a_developer_searches_filters_pages_and_meets_the_empty_states(live_server, browser, screenshot):
    atlas = team("atlas")
    dana = UserFactory(username="dana", first_name="Dana", groups=["team-atlas"])
    for i in range(55):
        active_namespace(atlas, dana, name=f"svc{i}")
    for i in range(3):
        active_namespace(atlas, dana, name=f"pay{i}")
    prod = ["svc1", "pay0", "pay2"]
    ResourceRequest.objects.filter(name__in=prod).update(environment="prod")
    Resource.objects.filter(name__in=prod).update(environment="prod")
    url = live_server.url
    page = browser.new_page()
    page.set_default_timeout(15_000)
    watch = Watch(page, url)
    log_in(page, url, "dana")

    # Search and filter: the form keeps what was chosen, and the list narrows to it.
    page.goto(f"{url}/requests/")
    assert len(rows(page)) == 50
    page.fill("#f-search", "pay")
    page.select_option("#f-environment", "prod")
    page.click("form.filters >> text=Filter")
    page.wait_for_url("**/requests/?*environment=prod*")
    found = rows(page)
    assert len(found) == 2 and "pay2" in found[0] and "pay0" in found[1]  # newest first
    assert page.input_value("#f-search") == "pay" and page.input_value("#f-environment") == "prod"
    screenshot(page, "requests-filtered")

    # Nothing matches: the list says so and offers to reset.
    page.select_option("#f-kind", "database")
    page.click("form.filters >> text=Filter")
    page.wait_for_selector("td.empty >> text=Nothing matches these filters")
    screenshot(page, "requests-nothing-matches")
    page.click("td.empty >> text=Reset filters")
    page.wait_for_url(f"{url}/requests/")
    assert page.input_value("#f-search") == "" and len(rows(page)) == 50
    assert not page.is_visible("text=Reset filters")

    # Paging: older, then newer again, with no count and no repeat.
    first = rows(page)
    page.click("nav.pager >> text=Older")
    page.wait_for_url("**/requests/?after=*")
    older = rows(page)
    assert len(older) == 8 and not set(older) & set(first)
    screenshot(page, "requests-older")
    page.click("nav.pager >> text=Newer")
    page.wait_for_url("**/requests/?before=*")
    assert rows(page) == first

    # The resource list: filters by team and environment survive paging.
    page.goto(f"{url}/resources/")
    page.select_option("#f-team", "atlas")
    page.click("form.filters >> text=Filter")
    page.wait_for_url("**/resources/?*team=atlas*")
    page.click("nav.pager >> text=Older")
    page.wait_for_url("**/resources/?*after=*")
    assert "team=atlas" in page.url and page.input_value("#f-team") == "atlas"
    assert len(rows(page)) == 8
    screenshot(page, "resources-older-filtered")

    # A new user sees what to do first.
    page.click("header >> text=Log out")
    team("zephyr")
    UserFactory(username="olga", groups=["team-zephyr"])
    log_in(page, url, "olga")
    page.goto(f"{url}/requests/")
    page.wait_for_selector("td.empty >> text=No requests yet")
    screenshot(page, "requests-empty")
    page.click("td.empty >> text=Request a namespace")
    page.wait_for_url(f"{url}/requests/new/")
    page.goto(f"{url}/resources/")
    page.wait_for_selector("td.empty >> text=No resources yet")
    screenshot(page, "resources-empty")

    assert watch.problems == []
