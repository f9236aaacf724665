"""An app's Ingress host: only under the domains an admin configured, and one app per host across teams."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import IntegrityError, connection, connections, transaction
from django.utils import timezone

from provisioning.models import Release
from provisioning.services.releases import app_rollback_file, app_upgrade_file
from requests_app.errors import ValidationFailed
from requests_app.models import AuditEvent, Resource, ResourceRequest
from requests_app.services import request_submit
from tests.factories import active_namespace, app_template

pytestmark = pytest.mark.django_db
URL = "/api/v1/requests/"
HOST = "shop.apps.example.org"
TAKEN = f"{HOST} is already used by another app, or asked for by a pending request; choose another host."


def app_body(team="atlas", namespace="checkout", name="shop", **spec):
    return {
        "kind": "app",
        "team": team,
        "name": name,
        "environment": "dev",
        "lease_days": 14,
        "justification": "the shop",
        "spec": {"namespace": namespace, "template": "web", **spec},
    }


@pytest.fixture
def namespaces(atlas, zephyr, requester, outsider):
    app_template("web")
    return active_namespace(atlas, requester, name="checkout"), active_namespace(zephyr, outsider, name="web")


def live_app(namespace, owner, host, name="live", state="active"):
    """An app that runs (or ran: `state`) with `host`, as the worker leaves it."""
    spec = {"namespace": namespace.namespace_name, "template": "web", "replicas": 1, "image_tag": "1.4.2", "host": host}
    request = ResourceRequest.objects.create(
        kind="app",
        team=namespace.team,
        requester=owner,
        name=name,
        environment="dev",
        lease_days=14,
        spec=spec,
        parent=namespace,
        state="active" if state in ("active", "grace") else "reclaimed",
    )
    return Resource.objects.create(
        kind="app",
        name=name,
        team=namespace.team,
        owner=owner,
        environment="dev",
        spec=spec,
        lease_days=14,
        parent=namespace,
        created_by_request=request,
        state=state,
        activated_at=timezone.now(),
    )


def assert_host_refused(response, message=TAKEN):
    assert response.status_code == 400, response.content
    assert response.json() == {"spec.host": [message]}


# --- domains ---------------------------------------------------------------------------------------------


def test_a_host_under_the_configured_domain_is_accepted_and_reaches_the_plan(api, requester, namespaces):
    response = api.as_(requester).post(URL, app_body(host=HOST), format="json")
    assert response.status_code == 201, response.content
    plan = api.get(f"{URL}{response.json()['id']}/plan/").json()["objects"]
    (ingress,) = [o for o in plan if o["kind"] == "Ingress"]
    assert ingress["spec"]["rules"][0]["host"] == HOST


@pytest.mark.parametrize(
    ("host", "message"),
    [
        # The service's own host, and the domain itself (the other shapes are in tests/unit/test_specs.py).
        ("leasehold.example.org", "Must be a name under *.apps.example.org (not the domain itself), such as"),
        ("apps.example.org", "Must be a name under *.apps.example.org (not the domain itself), such as"),
        (["shop.apps.example.org"], "Must be a DNS name such as checkout.apps.example.org."),
    ],
)
def test_a_host_outside_the_configured_domains_is_a_400_on_the_host(api, requester, namespaces, host, message):
    response = api.as_(requester).post(URL, app_body(host=host), format="json")
    assert response.status_code == 400, response.content
    assert response.json()["spec.host"][0].startswith(message)
    assert not ResourceRequest.objects.filter(kind="app").exists()


def test_the_domains_are_the_admins_setting(api, requester, namespaces, settings):
    settings.LEASEHOLD_INGRESS_DOMAINS = ("preview.example.net",)
    assert_host_refused(
        api.as_(requester).post(URL, app_body(host=HOST), format="json"),
        "Must be a name under *.preview.example.net (not the domain itself), such as checkout.preview.example.net.",
    )
    assert api.post(URL, app_body(host="shop.preview.example.net"), format="json").status_code == 201
    catalog = api.get("/api/v1/catalog/").json()
    assert catalog["kinds"][2]["ingress_domains"] == ["preview.example.net"]


def test_without_configured_domains_no_app_gets_a_host_but_apps_without_one_are_fine(
    api, requester, namespaces, settings
):
    settings.LEASEHOLD_INGRESS_DOMAINS = ()
    assert_host_refused(
        api.as_(requester).post(URL, app_body(host=HOST), format="json"),
        "This installation offers no Ingress hosts (no domain is configured); leave the host out.",
    )
    assert api.post(URL, app_body(), format="json").status_code == 201


def test_the_services_own_address_is_refused_even_under_a_configured_domain(api, requester, namespaces, settings):
    settings.ALLOWED_HOSTS = ["portal.apps.example.org", ".example.org", "*"]
    settings.LEASEHOLD_BASE_URL = "https://leasehold.apps.example.org"
    for own in ("portal.apps.example.org", "leasehold.apps.example.org"):
        assert_host_refused(
            api.as_(requester).post(URL, app_body(host=own), format="json"),
            f"{own} is the address of Leasehold itself.",
        )
    assert api.post(URL, app_body(host=HOST), format="json").status_code == 201


def test_the_web_form_names_the_domains_and_puts_a_refused_host_next_to_its_field(client, requester, namespaces):
    client.force_login(requester)
    page = client.get("/requests/new/?kind=app").content.decode()
    assert "A name under *.apps.example.org, e.g. checkout.apps.example.org" in page
    form = {
        "kind": "app",
        "namespace": str(namespaces[0].pk),
        "name": "shop",
        "environment": "dev",
        "template": "web",
        "replicas": 1,
        "host": "leasehold.example.org",
        "lease_days": 14,
    }
    response = client.post("/requests/new/?kind=app", form)
    assert response.status_code == 200
    errors = response.context["form"].errors
    assert list(errors) == ["host"] and errors["host"][0].startswith("Must be a name under *.apps.example.org")
    assert not ResourceRequest.objects.filter(kind="app").exists()


# --- one app per host ----------------------------------------------------------------------------------------


def test_a_host_another_teams_live_app_has_is_refused(api, requester, outsider, namespaces):
    atlas_ns, zephyr_ns = namespaces
    live_app(zephyr_ns, outsider, HOST)
    assert_host_refused(api.as_(requester).post(URL, app_body(host=HOST), format="json"))
    assert not ResourceRequest.objects.filter(team__slug="atlas", kind="app").exists()
    assert not AuditEvent.objects.filter(verb="submitted").exists()


def test_a_host_stays_taken_while_its_app_is_in_grace(api, requester, outsider, namespaces):
    live_app(namespaces[1], outsider, HOST, state="grace")
    assert_host_refused(api.as_(requester).post(URL, app_body(host=HOST), format="json"))


def test_a_host_the_same_team_uses_is_refused_too(api, requester, namespaces):
    live_app(namespaces[0], requester, HOST, name="old-shop")
    assert_host_refused(api.as_(requester).post(URL, app_body(host=HOST), format="json"))
    assert_host_refused(api.post("/api/v1/plan/", app_body(host=HOST), format="json"))


def test_a_pending_request_holds_its_host_until_it_ends(api, requester, outsider, namespaces):
    filed = api.as_(outsider).post(
        URL, app_body(team="zephyr", namespace="web", name="store", host=HOST), format="json"
    )
    assert filed.status_code == 201, filed.content
    assert filed.json()["state"] == "pending_approval"
    assert_host_refused(api.as_(requester).post(URL, app_body(host=HOST), format="json"))
    assert api.as_(outsider).post(f"{URL}{filed.json()['id']}/cancel/").status_code == 200
    assert api.as_(requester).post(URL, app_body(host=HOST), format="json").status_code == 201


def test_a_reclaimed_apps_host_is_free_again(api, requester, outsider, namespaces):
    live_app(namespaces[1], outsider, HOST, state="reclaimed")
    assert api.as_(requester).post(URL, app_body(host=HOST), format="json").status_code == 201


def test_the_database_refuses_a_second_live_request_for_a_host_whatever_the_caller(requester, outsider, namespaces):
    live_app(namespaces[1], outsider, HOST)
    with pytest.raises(IntegrityError, match="requests_one_live_app_per_host"), transaction.atomic():
        ResourceRequest.objects.create(
            kind="app", team=namespaces[0].team, requester=requester, name="shop", environment="dev",
            lease_days=14, spec={"host": HOST}, parent=namespaces[0],
        )  # fmt: skip
    # Requests that do not hold a host do not count: finished ones, and upgrades of the app itself.
    ResourceRequest.objects.create(
        kind="app", team=namespaces[0].team, requester=requester, name="shop", environment="dev",
        lease_days=14, spec={"host": HOST}, parent=namespaces[0], state="cancelled",
    )  # fmt: skip


def test_an_app_with_a_host_can_still_be_upgraded_and_rolled_back(requester, namespaces):
    app = live_app(namespaces[0], requester, HOST)
    Release.objects.create(
        resource=app, number=1, request=app.created_by_request, image_tag="1.4.2", spec=app.spec, manifests=[]
    )
    upgrade = app_upgrade_file(resource=app, actor=requester, image_tag="2.0.0", justification="")
    assert upgrade.spec["host"] == HOST
    ResourceRequest.objects.filter(pk=upgrade.pk).update(state="cancelled")
    rollback = app_rollback_file(resource=app, actor=requester, release=1, justification="")
    assert rollback.spec["host"] == HOST


def test_a_failed_app_whose_host_was_taken_meanwhile_cannot_be_retried(
    api, requester, outsider, admin_user, namespaces
):
    filed = request_submit(
        requester=requester, team="atlas", kind="app", name="shop", environment="dev", lease_days=14,
        spec={"namespace": "checkout", "template": "web", "host": HOST},
    )  # fmt: skip
    ResourceRequest.objects.filter(pk=filed.pk).update(state="failed", error="boom")
    live_app(namespaces[1], outsider, HOST)
    response = api.as_(admin_user).post(f"{URL}{filed.pk}/retry/")
    assert response.status_code == 409, response.content
    assert response.json() == {"detail": "Another request now holds this request's Ingress host; it cannot be retried."}
    filed.refresh_from_db()
    assert filed.state == "failed"
    assert not AuditEvent.objects.filter(request=filed, verb="retried").exists()


def test_a_host_that_is_not_taken_passes_the_services_check(requester, namespaces):
    filed = request_submit(
        requester=requester, team="atlas", kind="app", name="shop", environment="dev", lease_days=14,
        spec={"namespace": "checkout", "template": "web", "host": "other.apps.example.org"},
    )  # fmt: skip
    assert filed.spec["host"] == "other.apps.example.org"
    with pytest.raises(ValidationFailed) as exc:
        request_submit(
            requester=requester, team="atlas", kind="app", name="shop2", environment="dev", lease_days=14,
            spec={"namespace": "checkout", "template": "web", "host": "other.apps.example.org"},
        )  # fmt: skip
    assert exc.value.errors == {"spec.host": [TAKEN.replace(HOST, "other.apps.example.org")]}


# --- two requests for one host at the same moment ------------------------------------------------------------


@pytest.mark.integration  # needs PostgreSQL's concurrent transactions
@pytest.mark.django_db(transaction=True)
def test_two_teams_filing_one_host_at_the_same_moment_get_one_request_and_one_400(atlas, zephyr, requester, outsider):
    if connection.vendor != "postgresql":
        pytest.skip("the race needs PostgreSQL's concurrent transactions")
    app_template("web")
    active_namespace(atlas, requester, name="checkout")
    active_namespace(zephyr, outsider, name="web")
    filings = [
        (requester, "atlas", "shop", "checkout"),
        (outsider, "zephyr", "store", "web"),
    ]
    barrier = threading.Barrier(2)
    results: list[object] = [None, None]

    def file(i: int) -> None:
        user, team_slug, name, namespace = filings[i]
        try:
            barrier.wait(timeout=10)
            # The filing commits a moment late (as when the approval chain takes a while to open): the
            # other one's check cannot see it yet, so only the unique index can tell the two apart.
            with transaction.atomic():
                results[i] = request_submit(
                    requester=user, team=team_slug, kind="app", name=name, environment="dev", lease_days=14,
                    spec={"namespace": namespace, "template": "web", "host": HOST},
                )  # fmt: skip
                time.sleep(0.5)
        except Exception as exc:  # noqa: BLE001  (the result under test)
            results[i] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=file, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not any(t.is_alive() for t in threads), "a filing hung"
    errors = [r for r in results if isinstance(r, Exception)]
    assert len(errors) == 1, results
    assert isinstance(errors[0], ValidationFailed), errors
    assert errors[0].errors == {"spec.host": [TAKEN]}
    assert isinstance(errors[0].__cause__, IntegrityError)  # decided by the index, not by the check
    assert ResourceRequest.objects.filter(kind="app", spec__host=HOST).count() == 1
    assert AuditEvent.objects.filter(verb="submitted").count() == 1
