"""Every page, the admin and the lease emails name a database or an app as people know it,
`<namespace> / <name>` (CONTRACT.md §6), never by its namespace alone nor by a name that exists nowhere
(`atlas-orders`); and the wording a person reads is words, not field names."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from leases import notices
from leases.models import Lease
from requests_app.models import Resource
from tests.factories import LeaseFactory, active_child, active_namespace, app_template

pytestmark = pytest.mark.django_db

DATABASE_SPEC = {"engine": "postgres", "version": "16", "storage": "10Gi", "plan": "small"}


def workloads(namespace, database="orders", app="shop"):
    """An active database and an app in `namespace`, each on a lease that ends in three days."""
    db = active_child(
        namespace,
        "database",
        database,
        {**DATABASE_SPEC, "namespace": str(namespace.pk)},
        frozen={"provider": "statefulset"},
    )
    web = active_child(namespace, "app", app, {"namespace": str(namespace.pk), "template": "web", "replicas": 1})
    now = timezone.now()
    for resource in (namespace, db, web):
        LeaseFactory(resource=resource, expires_at=now + timedelta(days=3))
    return db, web


@pytest.fixture
def web_namespace(atlas, requester):
    return active_namespace(atlas, requester, name="web")


@pytest.fixture
def orders_and_shop(web_namespace):
    return workloads(web_namespace)


def page(client, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200, url
    return response.content.decode()


def assert_named_as_people_know_them(text: str, *names: str) -> None:
    for name in names:
        assert f"atlas-web / {name}" in text
        assert f"atlas-{name}" not in text  # the name that exists nowhere
    assert "atlas/" not in text


def test_every_list_and_page_names_the_database_and_the_app_by_namespace_and_name(client, requester, orders_and_shop):
    database, app = orders_and_shop
    client.force_login(requester)
    for url in ("/", "/requests/", "/resources/", "/leases/", "/leases/forecast/"):
        assert_named_as_people_know_them(page(client, url), "orders", "shop")
    requests = page(client, "/requests/")
    assert "create database atlas-web / orders" in requests and "create app atlas-web / shop" in requests

    resource_page = page(client, f"/resources/{database.pk}/")
    assert "<title>database atlas-web / orders · Leasehold</title>" in resource_page
    assert "Database <code>atlas-web / orders</code>" in resource_page
    assert 'data-confirm="Delete atlas-web / orders and everything in it now?"' in resource_page

    request_page = page(client, f"/requests/{database.created_by_request_id}/")
    assert "<title>create database atlas-web / orders · Leasehold</title>" in request_page
    assert "Create database <code>atlas-web / orders</code>" in request_page
    assert_named_as_people_know_them(request_page, "orders")
    assert "App <code>atlas-web / shop</code>" in page(client, f"/resources/{app.pk}/")


def test_the_app_form_offers_databases_by_their_display_name(client, requester, orders_and_shop):
    app_template("web")
    client.force_login(requester)
    form = page(client, "/requests/new/?kind=app")
    database = orders_and_shop[0]
    assert f'<option value="{database.pk}">atlas-web / orders</option>' in form


def test_the_lists_read_the_display_names_without_a_query_per_row(client, requester, admin_user, atlas, web_namespace):
    """`team` and `parent__team` come with the rows: ten more databases and apps cost no more queries."""

    def queries(user, url: str) -> int:
        client.force_login(user)
        with CaptureQueriesContext(connection) as captured:
            page(client, url)
        return len(captured)

    workloads(web_namespace)
    urls = [
        (requester, "/requests/"),
        (requester, "/resources/"),
        (requester, "/leases/"),
        (admin_user, "/admin/requests_app/resourcerequest/"),
        (admin_user, "/admin/requests_app/resource/"),
        (admin_user, "/admin/leases/lease/"),
    ]
    before = [queries(user, url) for user, url in urls]
    for i in range(5):
        workloads(active_namespace(atlas, requester, name=f"web{i}"), database=f"orders{i}", app=f"shop{i}")
    assert [queries(user, url) for user, url in urls] == before


def test_the_admin_lists_name_requests_and_resources_by_display_name(client, admin_user, orders_and_shop):
    client.force_login(admin_user)
    for url in (
        "/admin/requests_app/resourcerequest/",
        "/admin/requests_app/resource/",
        "/admin/leases/lease/",
    ):
        assert_named_as_people_know_them(page(client, url), "orders", "shop")
    database = orders_and_shop[0]
    change = page(client, f"/admin/requests_app/resource/{database.pk}/change/")
    assert "database atlas-web / orders" in change


def test_the_expiry_notice_names_the_database_by_namespace_and_name(
    orders_and_shop, django_capture_on_commit_callbacks
):
    database = Resource.objects.select_related("team", "parent__team").get(pk=orders_and_shop[0].pk)
    expires_at = Lease.objects.get(resource=database).expires_at
    with django_capture_on_commit_callbacks(execute=True):
        notices.expiry_notice(database, expires_at, 1)
        notices.quarantine_notice(database, expires_at + timedelta(days=3), 1)
    expiry, quarantine = mail.outbox
    assert expiry.subject == "[Leasehold] database atlas-web / orders expires in 1 day"
    assert "The lease of database atlas-web / orders (team atlas) ends on" in expiry.body
    assert quarantine.subject == "[Leasehold] database atlas-web / orders expired and is quarantined"
    assert "1 workload was scaled to zero" in quarantine.body


# --- wording ---------------------------------------------------------------------------------------


def test_the_catalog_says_request_an_app_and_labels_its_columns(client, requester):
    client.force_login(requester)
    catalog = page(client, "/catalog/")
    assert "Request an app" in catalog and "Request a database" in catalog and "Request a namespace" in catalog
    assert "Request a app" not in catalog
    assert ">CPU request</th>" in catalog and ">Memory limit</th>" in catalog
    assert "cpu_request" not in catalog and "memory_limit" not in catalog


def test_the_request_form_labels_its_fields_in_words(client, requester):
    client.force_login(requester)
    form = page(client, "/requests/new/")
    assert '<label for="id_cpu">CPU:</label>' in form
    assert '<label for="id_lease_days">Lease (days):</label>' in form
    assert "Cpu:" not in form and "Lease days:" not in form
    assert '<option value="database">Database</option>' in form


def test_the_plan_preview_names_the_fields_of_its_errors(client, requester):
    client.force_login(requester)
    body = {"kind": "namespace", "team": "atlas", "name": "load", "environment": "dev", "plan": "custom"}
    response = client.post("/requests/preview/", {**body, "lease_days": 7})
    assert response.status_code == 200
    text = response.content.decode()
    assert "<li>CPU: Required when no plan is given.</li>" in text
    assert "cpu:" not in text


def test_a_request_filed_a_moment_ago_was_filed_just_now(client, requester, web_namespace):
    client.force_login(requester)
    requests = page(client, "/requests/")
    assert "just now" in requests
    assert "0\xa0minutes" not in requests


def test_the_lease_says_how_often_it_was_extended(client, requester, orders_and_shop):
    database = orders_and_shop[0]
    client.force_login(requester)
    assert "not extended yet" in page(client, f"/resources/{database.pk}/")
    Lease.objects.filter(resource=database).update(extensions=1)
    once = page(client, f"/resources/{database.pk}/")
    assert "extended 1 time<" in once and "extension(s)" not in once
    Lease.objects.filter(resource=database).update(extensions=3)
    assert "extended 3 times" in page(client, f"/resources/{database.pk}/")
