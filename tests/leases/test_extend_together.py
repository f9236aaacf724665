"""The extend form on a resource's page: its limits and server-side errors by the field, and a namespace's
apps and databases extended together with it (each by `lease_extend`: its own checks, limits and audit)."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.forms.models import model_to_dict
from django.utils import timezone

from leases.models import Lease
from leases.services.opening import lease_open
from requests_app.models import AppTemplate, AuditEvent, Resource, ResourceRequest
from tests.factories import active_child, active_namespace, app_template, in_grace

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def no_cluster(settings):
    """No cluster here: the re-stamp after an extension fails and is logged; the extension stands."""
    settings.LEASEHOLD_CLUSTER = "local"
    settings.LEASEHOLD_LOCAL_KUBECONFIG = "/nonexistent/kubeconfig"


@pytest.fixture
def checkout(atlas, requester):
    namespace = active_namespace(atlas, requester, name="checkout")
    lease_open(resource=namespace)
    return namespace


def child(namespace, kind: str, name: str):
    if kind == "database":
        spec = {
            "namespace": str(namespace.pk),
            "engine": "postgres",
            "version": "16",
            "storage": "1Gi",
            "plan": "small",
        }
        frozen = {"provider": "statefulset"}
    else:
        template = AppTemplate.objects.filter(slug="web").first() or app_template("web")
        spec = {"namespace": str(namespace.pk), "template": "web", "image_tag": "1", "replicas": 1}
        frozen = {"template": model_to_dict(template, exclude=["id", "name", "description", "default_tag", "active"])}
    resource = active_child(namespace, kind, name, spec, frozen=frozen)
    lease_open(resource=resource)
    return resource


def extend(client, resource, **data):
    return client.post(f"/resources/{resource.pk}/extend/", {"days": 7, "justification": "demo", **data}, follow=True)


def extend_form(page: str) -> str:
    return page.split('class="extend-form"')[1].split("</form>")[0]


def states(*resources) -> list[tuple[str, str]]:
    return [
        (r.state, r.lease.state)
        for r in Resource.objects.select_related("lease").filter(pk__in=[r.pk for r in resources])
    ]


def test_the_form_has_labelled_fields_and_states_the_limits_in_force(client, checkout, requester, settings):
    settings.LEASE_MAX_DAYS = 30
    settings.LEASE_MAX_TOTAL_DAYS = 20
    client.force_login(requester)
    form = extend_form(client.get(f"/resources/{checkout.pk}/").content.decode())
    assert "novalidate" in form.split(">")[0]
    assert '<label for="id_days">Extend by (days)</label>' in form
    assert '<label for="id_justification">Why it is still needed</label>' in form
    assert not re.search(r"\s(required|min|max)=", form)  # no browser-only validation popups
    until = Lease.objects.get(resource=checkout).starts_at + timedelta(days=20)
    assert f"30 days at most per extension; 20 days in total from the lease's start (until {until:%Y-%m-%d})" in form
    # 14 of the 20 days are used: 6 more at once, beyond that an extension waits for approval.
    assert "6 more days now, beyond that the extension waits for approval" in form


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"days": "0"}, "days", "Must be a whole number of days from 1 to 90."),
        ({"days": "91"}, "days", "Must be a whole number of days from 1 to 90."),
        ({"days": "soon"}, "days", "Give a whole number of days."),
        ({"days": ""}, "days", "Give a number of days."),
        ({"justification": "  "}, "justification", "Say why the resource is still needed."),
    ],
)
def test_bad_input_shows_the_servers_message_next_to_the_field(client, checkout, requester, data, field, message):
    client.force_login(requester)
    response = extend(client, checkout, **data)
    assert response.status_code == 400
    form = extend_form(response.content.decode())
    label = f'<label for="id_{field}">'
    assert re.search(re.escape(label) + r"[^<]*</label>\s*<span class=\"errorlist\"[^>]*>" + re.escape(message), form)
    value = data.get(field, "").strip()
    if value:
        assert f'value="{value}"' in form  # what was typed is kept
    assert Lease.objects.get(resource=checkout).extensions == 0


def test_a_child_cannot_outlive_its_namespace_and_is_told_by_the_field(client, checkout, requester):
    app = child(checkout, "app", "shop")
    client.force_login(requester)
    page = client.get(f"/resources/{app.pk}/").content.decode()
    ends = Lease.objects.get(resource=checkout).expires_at
    assert f"Not beyond the namespace's lease, which ends {ends:%Y-%m-%d %H:%M} UTC." in extend_form(page)
    response = extend(client, app)
    assert response.status_code == 400
    assert "extend the namespace first" in extend_form(response.content.decode())


def test_the_quarantined_children_and_those_ending_with_the_namespace_are_preselected(client, checkout, requester):
    shop = child(checkout, "app", "shop")  # its lease ends with the namespace's
    orders = child(checkout, "database", "orders")
    early = child(checkout, "app", "early")
    Lease.objects.filter(resource=early).update(expires_at=timezone.now() + timedelta(days=2))
    in_grace(orders)
    client.force_login(requester)
    form = extend_form(client.get(f"/resources/{checkout.pk}/").content.decode())
    checked = set(re.findall(r'name="children" value="([^"]+)" checked', form))
    assert checked == {str(shop.pk), str(orders.pk)}
    assert f'value="{early.pk}"' in form
    assert "atlas-checkout / early" in form


def test_a_namespace_in_grace_comes_back_with_the_children_chosen_and_the_page_says_which(client, checkout, requester):
    shop = child(checkout, "app", "shop")
    orders = child(checkout, "database", "orders")
    in_grace(checkout, shop, orders)
    client.force_login(requester)
    response = extend(client, checkout, children=[str(shop.pk)])
    assert response.status_code == 200
    page = response.content.decode()
    assert "Extended: the lease now ends" in page
    assert "Restored with it (out of quarantine, workloads scaled back up): atlas-checkout / shop." in page
    assert "Still quarantined in this namespace: atlas-checkout / orders." in page
    assert states(checkout) == [("active", "active")]
    assert states(shop) == [("active", "active")]
    assert states(orders) == [("grace", "grace")]
    # Each extension is its own, audited with the actor and the reason.
    for resource in (checkout, shop):
        event = AuditEvent.objects.get(resource=resource, verb="lease_extended")
        assert (event.actor, event.detail.endswith("(+7 days): demo")) == (requester, True)
    assert not AuditEvent.objects.filter(resource=orders, verb="lease_extended").exists()
    assert Lease.objects.get(resource=shop).expires_at == Lease.objects.get(resource=checkout).expires_at


def test_a_child_that_cannot_follow_is_named_with_the_reason_and_the_rest_stands(client, checkout, requester, settings):
    """The namespace needs approval to go beyond the policy's total: its extension waits, so the app whose
    lease ends with the namespace's cannot be extended past it (its own check says so); the database, which
    ends sooner, still fits and is extended."""
    shop = child(checkout, "app", "shop")
    orders = child(checkout, "database", "orders")
    Lease.objects.filter(resource=orders).update(expires_at=timezone.now() + timedelta(days=1))
    settings.LEASE_MAX_TOTAL_DAYS = 15
    client.force_login(requester)
    response = extend(client, checkout, days=5, children=[str(shop.pk), str(orders.pk)])
    filed = ResourceRequest.objects.get(action="extend", resource=checkout)
    assert response.redirect_chain[-1][0] == f"/requests/{filed.pk}/"
    page = response.content.decode()
    assert "an extension request now waits for approval" in page
    assert re.search(r"atlas-checkout / shop was not extended: The namespace&#x27;s lease ends .*: extend the", page)
    assert "Extended with it: atlas-checkout / orders." in page
    assert Lease.objects.get(resource=shop).extensions == 0
    assert Lease.objects.get(resource=orders).extensions == 1


def test_a_choice_outside_the_namespace_extends_nothing(client, checkout, requester, atlas):
    other = active_namespace(atlas, requester, name="other")
    lease_open(resource=other)
    stranger = child(other, "app", "stranger")
    client.force_login(requester)
    response = extend(client, checkout, children=[str(stranger.pk)])
    assert response.status_code == 400
    assert "is not one of the available choices" in extend_form(response.content.decode())
    assert not Lease.objects.filter(extensions__gt=0).exists()


def test_outsiders_cannot_extend_anything_together(client, checkout, outsider):
    shop = child(checkout, "app", "shop")
    client.force_login(outsider)
    assert extend(client, checkout, children=[str(shop.pk)]).status_code == 404
    assert not Lease.objects.filter(extensions__gt=0).exists()


def test_bad_input_for_a_resource_without_a_lease_is_a_message(client, atlas, requester):
    pending = active_namespace(atlas, requester, name="pending")  # no lease opened
    client.force_login(requester)
    response = extend(client, pending, days="soon")
    assert response.redirect_chain == [(f"/resources/{pending.pk}/", 302)]
    assert "Give a whole number of days." in response.content.decode()
