"""Relations on the resource pages: a namespace lists its databases and apps, an app shows its URL, template,
image and bound database, a database lists the apps bound to it, each in a number of queries that does not
grow with the counts; and the resource list filtered the same way ("and K more")."""

from __future__ import annotations

import re

import pytest

from leases.models import Lease
from leases.selectors import RELATED_ROWS
from leases.services.opening import lease_open
from requests_app.models import AppTemplate
from tests.factories import active_child, active_namespace, app_template

pytestmark = pytest.mark.django_db


@pytest.fixture
def checkout(atlas, requester):
    namespace = active_namespace(atlas, requester, name="checkout")
    lease_open(resource=namespace)
    return namespace


def database(namespace, name: str):
    spec = {"namespace": str(namespace.pk), "engine": "postgres", "version": "16", "storage": "1Gi", "plan": "small"}
    db = active_child(namespace, "database", name, spec, frozen={"provider": "statefulset"})
    lease_open(resource=db)
    return db


def app(namespace, name: str, *, bound=None, host: str | None = None):
    if not AppTemplate.objects.filter(slug="web").exists():
        app_template("web")
    spec = {"namespace": str(namespace.pk), "template": "web", "image_tag": "1.4.2", "replicas": 1}
    if bound is not None:
        spec["database"] = str(bound.pk)
    if host:
        spec["host"] = host
    frozen = {"template": {"slug": "web", "image_repository": "registry.example.org/platform/web"}}
    resource = active_child(namespace, "app", name, spec, frozen=frozen)
    lease_open(resource=resource)
    return resource


def page_of(client, resource, assert_queries=None) -> str:
    if assert_queries is None:
        return client.get(f"/resources/{resource.pk}/").content.decode()
    with assert_queries:
        return client.get(f"/resources/{resource.pk}/").content.decode()


def test_a_namespace_page_lists_its_databases_and_apps_with_state_lease_and_links(client, checkout, requester):
    orders = database(checkout, "orders")
    shop = app(checkout, "shop", bound=orders, host="shop.apps.example.org")
    Lease.objects.filter(resource=shop).update(state="grace")
    client.force_login(requester)
    page = page_of(client, checkout)
    section = page.split("Databases and apps in this namespace</h2>")[1].split("</table>")[0]
    assert f'<a href="/resources/{orders.pk}/">atlas-checkout / orders</a>' in section
    assert f'<a href="/resources/{shop.pk}/">atlas-checkout / shop</a>' in section
    assert '<span class="badge grace">grace</span>' in section  # the app's lease
    expires = Lease.objects.get(resource=orders).expires_at
    assert f"ends {expires:%Y-%m-%d %H:%M} UTC" in section
    assert 'href="https://shop.apps.example.org/"' in section
    card = page.split("Databases and apps in this namespace</h2>")[1].split("</div>")[0]
    assert "more</a>" not in card


def test_an_app_page_shows_its_url_template_image_and_database(client, checkout, requester):
    orders = database(checkout, "orders")
    shop = app(checkout, "shop", bound=orders, host="shop.apps.example.org")
    client.force_login(requester)
    page = page_of(client, shop)
    assert (
        '<a href="https://shop.apps.example.org/" rel="noopener noreferrer">https://shop.apps.example.org/</a>' in page
    )
    assert f'<a href="/resources/{orders.pk}/">atlas-checkout / orders</a>' in page
    assert "<code>registry.example.org/platform/web:1.4.2</code>" in page
    assert re.search(r"<th scope=\"row\">Template</th><td>Web <span class=\"muted\">\(web\)</span>", page)
    assert f'<a href="/resources/{checkout.pk}/">atlas-checkout</a>' in page  # its namespace


def test_an_app_without_host_or_database_says_so(client, checkout, requester):
    plain = app(checkout, "worker")
    client.force_login(requester)
    page = page_of(client, plain)
    assert "none (no host: reachable inside the cluster only)" in page
    assert re.search(r"<th scope=\"row\">Database</th><td><span class=\"muted\">none</span>", page)


def test_an_app_page_never_names_another_teams_database(client, checkout, requester, zephyr, outsider):
    theirs = active_namespace(zephyr, outsider, name="vault")
    secret_db = database(theirs, "secrets")
    mine = app(checkout, "shop", bound=secret_db)
    client.force_login(requester)
    page = page_of(client, mine)
    assert "secrets" not in page
    assert str(secret_db.pk) not in page.split("<h2>Releases")[0]


def test_a_database_page_lists_the_apps_bound_to_it(client, checkout, requester):
    orders = database(checkout, "orders")
    other = database(checkout, "other")
    shop = app(checkout, "shop", bound=orders)
    app(checkout, "elsewhere", bound=other)
    client.force_login(requester)
    section = page_of(client, orders).split("Apps using this database</h2>")[1].split("</table>")[0]
    assert f'<a href="/resources/{shop.pk}/">atlas-checkout / shop</a>' in section
    assert "elsewhere" not in section


def test_the_relations_cost_the_same_queries_however_many_children(
    client, checkout, requester, django_assert_max_num_queries, django_assert_num_queries
):
    """A namespace's page and a database's page read the first RELATED_ROWS related resources and count the
    rest only when there are more: the number of queries stays the same as the children grow."""
    orders = database(checkout, "orders")
    for i in range(3):
        app(checkout, f"a{i}", bound=orders)
    client.force_login(requester)
    with django_assert_max_num_queries(60) as few_ns:
        page_of(client, checkout)
    with django_assert_max_num_queries(60) as few_db:
        page_of(client, orders)

    for i in range(3, RELATED_ROWS + 3):
        app(checkout, f"a{i}", bound=orders)
    # 1 database and 23 apps: beyond a page, at most one count more per list (the children and the extend
    # choices on the namespace's page; the bound apps on the database's).
    with django_assert_max_num_queries(len(few_ns.captured_queries) + 2) as many_ns:
        page = page_of(client, checkout)
    assert f'<a href="/resources/?namespace={checkout.pk}">and 4 more</a>' in page
    with django_assert_max_num_queries(len(few_db.captured_queries) + 1) as many_db:
        page = page_of(client, orders)
    assert f'<a href="/resources/?database={orders.pk}">and 3 more</a>' in page

    for i in range(RELATED_ROWS + 3, RELATED_ROWS + 30):
        app(checkout, f"a{i}", bound=orders)
    with django_assert_num_queries(len(many_ns.captured_queries)):
        page = page_of(client, checkout)
    assert "and 31 more" in page
    with django_assert_num_queries(len(many_db.captured_queries)):
        page = page_of(client, orders)
    assert "and 30 more" in page


def test_the_and_more_links_list_the_same_resources(client, api, checkout, requester, atlas):
    orders = database(checkout, "orders")
    bound = {str(app(checkout, f"a{i}", bound=orders).pk) for i in range(3)}
    loose = str(app(checkout, "loose").pk)
    elsewhere = active_namespace(atlas, requester, name="elsewhere")
    not_here = str(database(elsewhere, "not-here").pk)
    client.force_login(requester)
    listed = client.get(f"/resources/?database={orders.pk}").content.decode()
    assert all(pk in listed for pk in bound) and loose not in listed
    in_ns = client.get(f"/resources/?namespace={checkout.pk}").content.decode()
    assert all(pk in in_ns for pk in {*bound, loose, str(orders.pk)}) and not_here not in in_ns
    body = api.as_(requester).get("/api/v1/resources/", {"database": str(orders.pk)}).json()
    assert {r["id"] for r in body["results"]} == bound
    assert api.get("/api/v1/resources/", {"namespace": "not-a-uuid"}).status_code == 400


def test_outsiders_see_no_relations(client, checkout, outsider):
    database(checkout, "orders")
    client.force_login(outsider)
    assert client.get(f"/resources/{checkout.pk}/").status_code == 404
    assert "orders" not in client.get(f"/resources/?namespace={checkout.pk}").content.decode()


def test_an_empty_namespace_says_what_to_do(client, checkout, requester):
    client.force_login(requester)
    section = page_of(client, checkout).split("Databases and apps in this namespace</h2>")[1].split("</table>")[0]
    assert "None yet. Request a database or an app, and choose this namespace." in section
