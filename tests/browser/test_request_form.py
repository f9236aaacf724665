"""A person files a database request through the web form, in a real browser (Debian's Chromium)."""

from __future__ import annotations

import pytest

from tests.factories import UserFactory, active_namespace, team


@pytest.mark.django_db(transaction=True)
def test_a_developer_files_a_database_request_and_sees_it_in_my_requests(live_server, browser_page):
    atlas = team("atlas")
    dana = UserFactory(username="dana", first_name="Dana", groups=["team-atlas"])
    active_namespace(atlas, dana, name="checkout", plan="medium")
    page = browser_page

    page.goto(f"{live_server.url}/login/")
    page.fill("#id_username", "dana")
    page.fill("#id_password", "leasehold")
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/")

    page.goto(f"{live_server.url}/requests/new/")
    page.select_option("#id_kind", "database")  # htmx swaps in the database fields
    page.wait_for_selector("#id_version")
    page.fill("#id_name", "orders")
    page.select_option("#id_plan", "small")
    page.fill("#id_storage", "5Gi")
    page.click("text=Preview plan")
    page.wait_for_selector("#plan .summary")  # the summary leads; the YAML is one click away
    page.click("#plan details > summary")
    assert "kind: StatefulSet" in page.inner_text("#plan pre")

    page.click("text=File request")
    page.wait_for_selector("h1 >> text=database")
    assert "orders" in page.inner_text("h1")

    page.click("header >> text=My requests")
    page.wait_for_selector("table")
    rows = page.inner_text("table")
    assert "create database atlas-checkout / orders" in rows
    assert "Pending approval" in rows


@pytest.mark.django_db(transaction=True)
def test_custom_quantities_appear_only_for_a_custom_plan(live_server, browser_page):
    team("atlas")
    UserFactory(username="dana", groups=["team-atlas"])
    page = browser_page
    page.goto(f"{live_server.url}/login/")
    page.fill("#id_username", "dana")
    page.fill("#id_password", "leasehold")
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/")
    page.goto(f"{live_server.url}/requests/new/")
    assert not page.is_visible("#id_cpu")
    page.select_option("#id_plan", "custom")
    assert page.is_visible("#id_cpu")
    page.select_option("#id_plan", "small")
    assert not page.is_visible("#id_cpu")
