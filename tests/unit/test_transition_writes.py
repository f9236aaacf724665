"""transition_apply(changed=...): only what changed is written, so a column another writer set stays."""

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from leases.models import Lease
from requests_app.models import AuditEvent, ResourceRequest
from requests_app.services import transition_apply
from tests.factories import ResourceFactory, ResourceRequestFactory

pytestmark = pytest.mark.django_db


def _updates(queries) -> list[str]:
    return [q["sql"] for q in queries if q["sql"].startswith("UPDATE")]


def test_the_whole_row_is_written_when_the_caller_says_nothing():
    request = ResourceRequestFactory(state="provisioning", error="stale")
    ResourceRequest.objects.filter(pk=request.pk).update(justification="set by someone else")
    with transaction.atomic(), CaptureQueriesContext(connection) as seen:
        transition_apply(request, "activate", actor=None, verb="activated")
    assert '"justification"' in _updates(seen.captured_queries)[0]
    request.refresh_from_db()
    assert request.justification != "set by someone else"  # overwritten: why callers that can say, say


def test_only_the_changed_fields_are_written():
    request = ResourceRequestFactory(state="approved", deliveries=0)
    ResourceRequest.objects.filter(pk=request.pk).update(justification="set by someone else")
    request.deliveries += 1  # the caller's own change, named in `changed`
    with transaction.atomic(), CaptureQueriesContext(connection) as seen:
        transition_apply(request, "start_provisioning", actor=None, verb="provisioning_started", changed=["deliveries"])
    (update,) = _updates(seen.captured_queries)
    assert '"spec"' not in update and '"frozen"' not in update and '"justification"' not in update
    request.refresh_from_db()
    assert (request.state, request.deliveries, request.justification) == ("provisioning", 1, "set by someone else")
    assert AuditEvent.objects.filter(verb="provisioning_started", target_id=str(request.pk)).count() == 1


def test_what_the_transition_itself_sets_is_written():
    request = ResourceRequestFactory(state="provisioning", error="the last attempt failed")
    with transaction.atomic():
        transition_apply(request, "activate", actor=None, verb="activated", changed=[])
    request.refresh_from_db()
    assert (request.state, request.error) == ("active", "")  # `activate` clears the error


def test_what_a_post_transition_receiver_sets_is_written():
    resource = ResourceFactory(state="provisioning")
    with transaction.atomic():
        transition_apply(resource, "activate", actor=None, verb="activated", changed=[])
    resource.refresh_from_db()
    lease = Lease.objects.get(resource=resource)  # opened by the leases receiver, which sets the expiry
    assert resource.state == "active"
    assert resource.lease_expires_at == lease.expires_at is not None


def test_the_update_is_still_a_compare_and_set_on_the_state():
    request = ResourceRequestFactory(state="provisioning")
    ResourceRequest.objects.filter(pk=request.pk).update(state="failed")  # someone else got there first
    from requests_app.errors import InvalidState

    with pytest.raises(InvalidState), transaction.atomic():
        transition_apply(request, "activate", actor=None, verb="activated", changed=[])
    request.refresh_from_db()
    assert request.state == "failed"
