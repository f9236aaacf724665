"""In a real browser: a namespace's page with its database and app, the extend form's error by its field,
and a namespace in grace extended together with its app (issue 14, relations)."""

from __future__ import annotations

import pytest
from django.forms.models import model_to_dict

from leases.services.opening import lease_open
from requests_app.models import Resource
from tests.browser.conftest import log_in
from tests.factories import UserFactory, active_child, active_namespace, app_template, in_grace, team


@pytest.fixture
def shop_in_grace(settings):
    """atlas-checkout with a database `orders` and an app `shop` bound to it, all three in grace."""
    settings.LEASEHOLD_CLUSTER = "local"  # no cluster: the extension's re-stamp is logged and skipped
    settings.LEASEHOLD_LOCAL_KUBECONFIG = "/nonexistent/kubeconfig"
    atlas = team("atlas")
    dana = UserFactory(username="dana", groups=["team-atlas"])
    checkout = active_namespace(atlas, dana, name="checkout")
    lease_open(resource=checkout)
    orders = active_child(
        checkout,
        "database",
        "orders",
        {"namespace": str(checkout.pk), "engine": "postgres", "version": "16", "storage": "5Gi", "plan": "small"},
        frozen={"provider": "statefulset"},
    )
    template = app_template("web")
    shop = active_child(
        checkout,
        "app",
        "shop",
        {
            "namespace": str(checkout.pk),
            "template": "web",
            "image_tag": "1.4.2",
            "replicas": 2,
            "database": str(orders.pk),
            "host": "shop.apps.example.org",
        },
        frozen={"template": model_to_dict(template, exclude=["id", "name", "description", "default_tag", "active"])},
    )
    for child in (orders, shop):
        lease_open(resource=child)
    in_grace(checkout, orders, shop)
    return checkout, orders, shop


@pytest.mark.django_db(transaction=True)
def test_a_namespace_in_grace_is_extended_with_its_app_from_its_page(
    live_server, browser_page, screenshot, shop_in_grace
):
    checkout, orders, shop = shop_in_grace
    page = browser_page
    log_in(page, live_server.url, "dana")

    page.goto(f"{live_server.url}/resources/{checkout.pk}/")
    related = page.locator("table", has=page.locator("caption", has_text="Databases and apps in this namespace"))
    assert "atlas-checkout / orders" in related.inner_text()
    assert "atlas-checkout / shop" in related.inner_text()
    assert page.get_attribute("a >> text=shop.apps.example.org", "href") == "https://shop.apps.example.org/"
    screenshot(page, "namespace-with-its-database-and-app")

    # A bad number: the server's message by the field, no browser popup (the form is `novalidate`).
    page.fill("#id_days", "500")
    page.fill("#id_justification", "the demo moved to Friday")
    page.click("form.extend-form button[type=submit]")
    page.wait_for_selector("#days-errors")
    assert "Must be a whole number of days from 1 to 90." in page.inner_text("#days-errors")
    assert page.input_value("#id_justification") == "the demo moved to Friday"
    screenshot(page, "extend-form-error")

    # Both are quarantined, so both are chosen already: extend the namespace with its app only.
    assert page.is_checked(f"input[name=children][value='{shop.pk}']")
    assert page.is_checked(f"input[name=children][value='{orders.pk}']")
    page.uncheck(f"input[name=children][value='{orders.pk}']")
    page.fill("#id_days", "7")
    page.click("form.extend-form button[type=submit]")
    page.wait_for_selector(".messages")
    messages = page.inner_text(".messages")
    assert "Restored with it (out of quarantine, workloads scaled back up): atlas-checkout / shop." in messages
    assert "Still quarantined in this namespace: atlas-checkout / orders." in messages
    screenshot(page, "extended-with-its-app")
    states = {r.name: (r.state, r.lease.state) for r in Resource.objects.select_related("lease")}
    assert states == {"checkout": ("active", "active"), "shop": ("active", "active"), "orders": ("grace", "grace")}

    page.click(f"a[href='/resources/{shop.pk}/'] >> nth=0")
    page.wait_for_selector("h1 >> text=app")
    assert "registry.example.org/platform/web:1.4.2" in page.inner_text("main")
    page.click("a >> text=atlas-checkout / orders")
    page.wait_for_selector("h1 >> text=database")
    bound = page.locator("table", has=page.locator("caption", has_text="Apps bound to this database"))
    assert "atlas-checkout / shop" in bound.inner_text()
    screenshot(page, "database-with-its-app")
