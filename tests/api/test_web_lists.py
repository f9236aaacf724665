"""The request and resource lists: search and filters as the API has them (environment too), keyset
pages that keep the filters, empty states that say what to do, and a constant number of queries."""

from __future__ import annotations

import html
import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from requests_app.models import Resource, ResourceRequest
from tests.factories import LeaseFactory, active_child, active_namespace

pytestmark = pytest.mark.django_db

LISTS = ("/requests/", "/resources/")


def namespaces(team, user, count, prefix="ns", environment="dev"):
    made = [active_namespace(team, user, name=f"{prefix}{i}") for i in range(count)]
    if environment != "dev":
        names = [r.name for r in made]
        ResourceRequest.objects.filter(team=team, name__in=names).update(environment=environment)
        Resource.objects.filter(team=team, name__in=names).update(environment=environment)
    return made


def listed(page: str) -> list[str]:
    """The names of the rows a list page shows, in order (read by the ids the rows link to, so that the
    test does not depend on how a row words its resource)."""
    body = page.split("</thead>", 1)[-1]
    ids = re.findall(r'href="/(?:requests|resources)/([0-9a-f-]{36})/"', body)
    by_id = {
        str(pk): name
        for model in (ResourceRequest, Resource)
        for pk, name in model.objects.filter(pk__in=ids).values_list("pk", "name")
    }
    return [by_id[i] for i in ids]


def link(page: str, rel: str) -> str | None:
    found = re.search(rf'href="(\?[^"]*)" rel="{rel}"', page)
    return html.unescape(found.group(1)) if found else None


def walk(client, path: str) -> tuple[list[str], list[str]]:
    """Every row of a list by its "Older" links, and the queries each page cost."""
    seen, url, costs = [], path, []
    while url:
        with CaptureQueriesContext(connection) as ctx:
            page = client.get(url).content.decode()
        costs.append(len(ctx.captured_queries))
        seen += listed(page)
        older = link(page, "next")
        url = path.split("?")[0] + older if older else None
    return seen, costs


@pytest.mark.parametrize("path", LISTS)
def test_it_walks_older_and_newer_pages_without_gaps_or_repeats(client, requester, atlas, path):
    namespaces(atlas, requester, 120)
    client.force_login(requester)
    seen, _ = walk(client, path)
    assert seen == [f"ns{i}" for i in reversed(range(120))]
    # Back from the third page: "Newer" shows the second page again, then the first (without a
    # "Newest" link there, as it is the first).
    first = client.get(path).content.decode()
    second = client.get(path + link(first, "next")).content.decode()
    third = client.get(path + link(second, "next")).content.decode()
    assert len(listed(third)) == 20 and link(third, "next") is None
    again = client.get(path + link(third, "prev")).content.decode()
    assert listed(again) == listed(second)
    top = client.get(path + link(again, "prev")).content.decode()
    assert listed(top) == listed(first) and "« Newest" not in top and link(top, "prev") is None


def test_rows_created_in_the_same_instant_are_each_listed_once(client, requester, atlas):
    """The cursor is (created_at, id): rows that share a time are ordered by id, none is lost or repeated."""
    namespaces(atlas, requester, 75)
    ResourceRequest.objects.update(created_at=timezone.now())
    client.force_login(requester)
    seen, _ = walk(client, "/requests/")
    assert sorted(seen) == sorted(f"ns{i}" for i in range(75))


def test_the_filters_survive_paging_and_the_reset_link_drops_them(client, requester, atlas):
    namespaces(atlas, requester, 60, prefix="prod", environment="prod")
    namespaces(atlas, requester, 10, prefix="dev")
    client.force_login(requester)
    first = client.get("/requests/?environment=prod&search=prod").content.decode()
    older = link(first, "next")
    assert "environment=prod" in older and "search=prod" in older
    second = client.get("/requests/" + older).content.decode()
    assert listed(second) == [f"prod{i}" for i in reversed(range(10))]
    assert "newer" in second.lower() and "environment=prod" in link(second, "prev")
    # The form shows the filters in force, and offers to drop them.
    assert '<option value="prod" selected>' in second and 'value="prod"' in second
    assert 'href="/requests/">Reset filters</a>' in second
    assert "Reset filters" not in client.get("/requests/").content.decode()


FILTER_CASES = {
    "/requests/": {
        "search=SHO": {"shop", "zshop"},
        "state=pending_approval": {"live1"},
        "kind=database": {"orders"},
        "team=zephyr": {"zshop"},
        "environment=prod": {"live0", "live1"},
        "environment=prod&state=active": {"live0"},
        "environment=staging": set(),
    },
    "/resources/": {
        "search=shop": {"shop", "zshop"},
        "state=grace": {"live1"},
        "kind=app": {"web"},
        "team=zephyr": {"zshop"},
        "environment=prod": {"live0", "live1"},
        "expiring_within=7": {"shop"},
        "environment=test": set(),
    },
}


@pytest.mark.parametrize("path", LISTS)
def test_each_filter_narrows_the_list_as_the_api_does(client, api, requester, atlas, zephyr, admin_user, path):
    namespace = active_namespace(atlas, requester, name="shop")
    active_child(namespace, "database", "orders", {"plan": "small"})
    active_child(namespace, "app", "web", {"template": "web", "image_tag": "1"})
    namespaces(atlas, requester, 2, prefix="live", environment="prod")
    active_namespace(zephyr, admin_user, name="zshop")
    ResourceRequest.objects.filter(name="live1").update(state="pending_approval")
    Resource.objects.filter(name="live1").update(state="grace")
    now = timezone.now()
    LeaseFactory(resource=namespace, expires_at=now + timedelta(days=3))
    client.force_login(admin_user)
    api.as_(admin_user)
    for query, expected in FILTER_CASES[path].items():
        on_page = set(listed(client.get(f"{path}?{query}").content.decode()))
        by_api = {r["name"] for r in api.get(f"/api/v1{path}?{query}").json()["results"]}
        assert on_page == by_api == expected, query


def test_a_bad_filter_value_is_said_and_ignored_on_the_page_and_refused_by_the_api(client, api, requester, atlas):
    namespaces(atlas, requester, 2)
    client.force_login(requester)
    page = client.get("/requests/?environment=moon&kind=namespace").content.decode()
    assert "Environment: Select a valid choice. moon is not one of the available choices. (ignored)" in page
    assert set(listed(page)) == {"ns0", "ns1"}  # shown without it; the valid filter still applies
    assert "environment=moon" not in page.split("</form>", 1)[1]
    api.as_(requester)
    assert api.get("/api/v1/requests/?environment=moon").status_code == 400
    assert api.get("/api/v1/resources/?environment=moon").status_code == 400


@pytest.mark.parametrize(
    ("path", "says"),
    [
        ("/requests/", 'No requests yet. <a href="/requests/new/">Request a namespace</a>'),
        (
            "/resources/",
            "No resources yet: they appear here once a request is approved. "
            '<a href="/requests/new/">Request a namespace</a>',
        ),
    ],
)
def test_an_empty_list_says_what_to_do(client, requester, path, says):
    client.force_login(requester)
    page = client.get(path).content.decode()
    assert says in page and "Nothing matches" not in page and "Reset filters" not in page


@pytest.mark.parametrize("path", LISTS)
def test_a_list_that_nothing_matches_offers_to_reset_the_filters(client, requester, atlas, path):
    namespaces(atlas, requester, 3)
    client.force_login(requester)
    page = client.get(path + "?search=nothing-like-it&environment=prod").content.decode()
    assert f'Nothing matches these filters. <a href="{path}">Reset filters</a>' in page
    assert "yet" not in page.split("</thead>", 1)[1]


@pytest.mark.parametrize("path", LISTS)
def test_a_cursor_shows_only_what_the_caller_may_see(client, requester, outsider, atlas, zephyr, path):
    """A cursor only says where to start: the list stays the caller's own (an outsider pasting a link
    with a cursor from atlas's list sees zephyr's rows, never atlas's)."""
    namespaces(atlas, requester, 60)
    active_namespace(zephyr, outsider, name="zonly")
    client.force_login(requester)
    older = link(client.get(path).content.decode(), "next")
    client.force_login(outsider)
    assert listed(client.get(path + older).content.decode()) == []
    assert listed(client.get(path).content.decode()) == ["zonly"]


@pytest.mark.parametrize("path", LISTS)
def test_every_page_costs_the_same_number_of_queries_at_any_depth_and_size(client, requester, atlas, path):
    namespaces(atlas, requester, 10, environment="prod")
    client.force_login(requester)
    _, small = walk(client, path + "?environment=prod")
    namespaces(atlas, requester, 140, prefix="more", environment="prod")
    _, large = walk(client, path + "?environment=prod")
    assert len(large) == 3
    assert set(large) == set(small), (small, large)  # page 1, 2 and 3 of 150 cost what one page of 10 does
    with CaptureQueriesContext(connection) as ctx:
        client.get(path + "?environment=prod&state=active&kind=namespace&team=atlas&search=ns")
    assert len(ctx.captured_queries) == small[0]  # filters add no query


def test_the_dashboard_chart_names_its_axes_and_has_a_text_alternative(client, requester, atlas):
    now = timezone.now()
    for i, days in enumerate((1, 2, 9)):
        namespace = active_namespace(atlas, requester, name=f"ns{i}")
        LeaseFactory(resource=namespace, expires_at=now + timedelta(days=days))
    client.force_login(requester)
    page = client.get("/leases/").content.decode()
    assert "Leases expiring (count)" in page and "Weeks from today (week 1 = the next 7 days)" in page
    assert 'role="img" aria-label="Bar chart of active leases expiring in each of the next 12 weeks: ' in page
    assert "week 1, 2; week 2, 1; week 3, 0;" in page and "week 12, 0." in page
    table = page.split("The same figures as a table", 1)[1].split("</table>", 1)[0]
    assert '<th scope="row">1</th>' in table and "<td>2</td>" in table and table.count("<tr>") == 13
