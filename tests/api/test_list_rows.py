"""The list rows of the API are built as plain dicts (requests_app/api/serializers.py): each must be what
DRF's generic walk over the declared fields gives, key for key and in the same order, so that the v1
output does not change; `display_name` (CONTRACT.md §6) is in the lists, the pages and the schema."""

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework import serializers
from rest_framework.renderers import JSONRenderer

from approvals.api.serializers import StepSerializer, approval_section, attach_approval_rows, step_row
from approvals.models import ApprovalChain, ApprovalStep, Decision
from leases.api.serializers import LeaseSerializer, ResourceSerializer, lease_row
from leases.models import Lease
from provisioning.api.serializers import ManagedObjectSerializer, object_row
from provisioning.models import ManagedObject, Release
from requests_app.api.serializers import EventSerializer, RequestSerializer, event_row
from requests_app.models import AuditEvent, Resource, ResourceRequest
from requests_app.selectors import requests_visible_to, resources_visible_to
from tests.factories import active_child, active_namespace

pytestmark = pytest.mark.django_db

generic = serializers.Serializer.to_representation  # DRF's walk over the declared fields


def same(fast: dict, slow: dict) -> None:
    assert list(fast) == list(slow)
    assert JSONRenderer().render(fast) == JSONRenderer().render(slow)


@pytest.fixture
def world(atlas, requester, approver, second_approver, admin_user):
    """A namespace, a database and an app in it, each with a lease, objects, a chain with decisions
    (one on behalf of someone) and events; the app with a release."""
    now = timezone.now()
    namespace = active_namespace(atlas, requester, name="shop")
    database = active_child(
        namespace,
        "database",
        "orders",
        {"engine": "postgres", "version": "16", "storage": "10Gi", "plan": "small"},
        frozen={},
    )
    app = active_child(namespace, "app", "web", {"template": "web", "image_tag": "1.0.0"})
    Release.objects.create(
        resource=app, number=1, request=app.created_by_request, image_tag="1.0.0", spec={}, manifests=[]
    )
    for resource in (namespace, database, app):
        request = resource.created_by_request
        request.resource = resource
        request.error = "" if resource is not app else "a failure, retried"
        request.save()
        Lease.objects.create(
            resource=resource,
            starts_at=now,
            expires_at=now + timedelta(days=14),
            grace_until=now + timedelta(days=17) if resource is app else None,
            last_report="ok ünïcode",
        )
        ManagedObject.objects.create(
            resource=resource,
            api_version="v1",
            kind="ConfigMap",
            namespace="atlas-shop",
            name=resource.name,
            applied_at=now,
            drift="replicas differ" if resource is database else "",
            drift_at=now if resource is database else None,
        )
        chain = ApprovalChain.objects.create(request=request, rule="default")
        first = ApprovalStep.objects.create(
            chain=chain, request=request, order=1, name="platform", group="platform-approvers", state="approved"
        )
        ApprovalStep.objects.create(
            chain=chain, request=request, order=2, name="security", group="security-approvers", escalate_to="ciso"
        )
        Decision.objects.create(step=first, approver=approver, verdict="approve", comment="fine")
        Decision.objects.create(step=first, approver=second_approver, on_behalf_of=admin_user, verdict="approve")
        AuditEvent.objects.create(
            actor=requester, actor_name="dana", verb="submitted", target_type="request", target_id=str(request.pk)
        )
        AuditEvent.objects.create(verb="activated", target_type="request", target_id=str(request.pk), request=request)
    AuditEvent.objects.create(
        actor=requester, actor_name="dana", verb="note", target_type="request", target_id="x", request=request
    )
    return namespace, database, app


def test_the_request_rows_are_what_drf_gives(world, requester):
    rows = list(requests_visible_to(requester).select_related("parent", "parent__team"))
    assert len(rows) == 3
    for request in rows:
        same(RequestSerializer(request).data, generic(RequestSerializer(), request))
        for event in request.events.all():
            same(event_row(event, timezone.get_current_timezone()), generic(EventSerializer(), event))
        steps = list(request.approval_chain.steps.order_by("order"))
        assert [s["id"] for s in approval_section(request)["steps"]] == [str(s.id) for s in steps]
        for step in steps:
            # StepSerializer's generic walk renders the decisions with DecisionSerializer's.
            same(step_row(step, timezone.get_current_timezone()), generic(StepSerializer(), step))
        decisions = approval_section(request)["steps"][0]["decisions"]
        assert [d["decided_by"] for d in decisions] == ["frank", "paula on behalf of ada"]
    # A page reads the approval sections for all its rows at once: the same as each row's own.
    page_rows = list(requests_visible_to(requester))
    attach_approval_rows(page_rows)
    for listed, alone in zip(page_rows, rows, strict=True):
        assert not hasattr(alone, "listed_approval")
        same(listed.listed_approval, approval_section(alone))
    # A page renders the same rows as the detail does, one by one.
    page = RequestSerializer(rows, many=True).data
    assert [dict(r) for r in page] == [generic(RequestSerializer(), r) for r in rows]


def test_the_resource_rows_are_what_drf_gives(world, admin_user):
    rows = list(resources_visible_to(admin_user))
    assert {r.kind for r in rows} == {"namespace", "database", "app"}
    tz = timezone.get_current_timezone()
    for resource in rows:
        same(ResourceSerializer(resource).data, generic(ResourceSerializer(), resource))
        same(lease_row(resource.lease), generic(LeaseSerializer(), resource.lease))
        for managed in resource.managed_objects.all():
            same(object_row(managed, tz), generic(ManagedObjectSerializer(), managed))


def test_a_naive_datetime_is_given_as_drf_gives_it(world, requester):
    from requests_app.api.serializers import api_datetime

    naive = timezone.now().replace(tzinfo=None)
    field = serializers.DateTimeField()
    assert api_datetime(naive, timezone.get_current_timezone()) == field.to_representation(naive)
    assert api_datetime(None, timezone.get_current_timezone()) is None


def test_display_name_in_lists_details_and_schema(api, world, requester, client):
    namespace, database, app = world
    api.as_(requester)
    requests = {r["name"]: r for r in api.get("/api/v1/requests/").json()["results"]}
    assert requests["shop"]["display_name"] == "atlas-shop"
    assert requests["orders"]["display_name"] == "atlas-shop / orders"
    resources = {r["name"]: r for r in api.get("/api/v1/resources/").json()["results"]}
    assert resources["shop"]["display_name"] == "atlas-shop"
    assert resources["web"]["display_name"] == "atlas-shop / web"
    assert api.get(f"/api/v1/resources/{database.pk}/").json()["display_name"] == "atlas-shop / orders"
    request = ResourceRequest.objects.get(name="web")
    assert api.get(f"/api/v1/requests/{request.pk}/").json()["display_name"] == "atlas-shop / web"
    schema = client.get("/api/schema/?format=json").json()["components"]["schemas"]
    for name in ("Request", "Resource"):
        assert schema[name]["properties"]["display_name"]["type"] == "string"
        assert "display_name" in schema[name]["required"]


def test_a_list_reads_neither_frozen_inputs_nor_password_hashes(api, world, requester, admin_user):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    api.as_(admin_user)
    with CaptureQueriesContext(connection) as ctx:
        api.get("/api/v1/requests/")
        api.get("/api/v1/resources/")
    page_queries = [q["sql"] for q in ctx.captured_queries if "ORDER BY" in q["sql"] and "LIMIT" in q["sql"]]
    assert len(page_queries) == 2
    for sql in page_queries:
        assert '"password"' not in sql
        assert '"frozen"' not in sql
        assert '"last_manifests"' not in sql
    assert Resource.objects.count() == 3
