"""The test factories make data that real data could be: the states the transitions leave, together."""

from __future__ import annotations

import pytest

from leases.models import Lease
from requests_app.models import Kind
from requests_app.specs import app_spec, database_spec
from tests.factories import (
    AppTemplateFactory,
    LeaseFactory,
    ResourceFactory,
    ResourceRequestFactory,
    default_spec,
)

pytestmark = pytest.mark.django_db


def test_a_request_is_pending_approval_for_a_member_of_its_team():
    request = ResourceRequestFactory()
    assert request.state == "pending_approval"
    assert request.team.has_member(request.requester)


def test_a_request_in_a_state_the_model_does_not_have_is_refused():
    with pytest.raises(ValueError, match="request state: 'done'"):
        ResourceRequestFactory(state="done")


@pytest.mark.parametrize(
    ("resource_state", "request_state"),
    [("provisioning", "provisioning"), ("active", "active"), ("grace", "active"), ("reclaimed", "reclaimed")],
)
def test_a_resource_comes_with_its_create_request_in_the_matching_state(resource_state, request_state):
    resource = ResourceFactory(state=resource_state)
    request = resource.created_by_request
    assert (request.state, request.kind, request.name, request.team) == (
        request_state,
        resource.kind,
        resource.name,
        resource.team,
    )
    assert (resource.activated_at is None) == (resource_state == "provisioning")


def test_a_database_or_app_goes_into_a_namespace_of_its_team_with_a_spec_the_service_would_store():
    database = ResourceFactory(kind="database")
    app = ResourceFactory(kind="app", parent=database.parent)
    namespace = database.parent
    assert (namespace.kind, namespace.team, app.team) == ("namespace", database.team, database.team)
    assert database_spec(database.spec) == database.spec
    assert app_spec(app.spec) == app.spec
    assert database.spec["namespace"] == app.spec["namespace"] == str(namespace.pk)
    assert database.created_by_request.parent == namespace


def test_there_is_a_default_spec_for_every_kind():
    namespace = ResourceFactory()
    assert all(default_spec(kind, namespace) for kind in Kind.values)


def test_a_lease_is_for_an_active_resource_and_stamps_its_expiry():
    with pytest.raises(ValueError, match="for a resource in that state, not 'provisioning'"):
        LeaseFactory(resource=ResourceFactory(state="provisioning"))
    assert not Lease.objects.exists()
    lease = LeaseFactory()
    lease.resource.refresh_from_db()
    assert lease.state == "active" and lease.resource.state == "active"
    assert lease.resource.lease_expires_at == lease.expires_at
    assert (lease.expires_at - lease.starts_at).days == lease.resource.lease_days


def test_a_lease_in_grace_is_for_a_resource_in_grace():
    assert LeaseFactory(state="grace", resource=ResourceFactory(state="grace")).state == "grace"
    with pytest.raises(ValueError, match="not 'active'"):
        LeaseFactory(state="grace")


def test_an_app_template_passes_the_admins_validation():
    template = AppTemplateFactory(slug="worker")
    template.full_clean()  # raises ValidationError with the fields at fault
    assert template.image_repository == "registry.example.org/platform/worker"
