"""What one provisioning run writes to the database, and in how many statements: every guarantee's row
(the claim, the object rows before the apply, the audit row of each state change, the lease) is there
exactly once, with the round trips folded (README "Performance")."""

from __future__ import annotations

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from leases.models import Lease
from provisioning.models import ManagedObject, Phase, ProvisioningJob
from provisioning.services.provision import request_provision
from requests_app.models import AuditEvent, Resource
from requests_app.services import audit_batch, audit_record

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_fresh_namespace_writes_each_row_once_in_few_statements(approved_namespace):
    request = approved_namespace()

    with CaptureQueriesContext(connection) as run:
        request_provision(request_id=request.pk)

    request.refresh_from_db()
    assert request.state == "active", request.error
    resource = Resource.objects.get(pk=request.resource_id)
    assert resource.state == "active"
    lease = Lease.objects.get(resource=resource)
    # The lease's expiry reaches the resource through the activation's own save, not an update of its own.
    assert resource.lease_expires_at == lease.expires_at
    assert ProvisioningJob.objects.filter(pk=request.pk, phase=Phase.DONE, claim_token=None).exists()
    rows = ManagedObject.objects.filter(resource=resource)
    assert rows.count() == 5 and all(row.applied_at and row.ready_at and row.uid for row in rows)
    trail = list(AuditEvent.objects.filter(request=request).order_by("at", "id").values_list("verb", "target_type"))
    run_trail = trail[trail.index(("provisioning_started", "resourcerequest")) :]
    assert run_trail == [
        ("provisioning_started", "resourcerequest"),
        *[("object_applied", "resource")] * 5,
        ("lease_opened", "lease"),
        ("activated", "resource"),
        ("activated", "resourcerequest"),
    ]
    # The claim's transaction (9 with BEGIN and COMMIT), the applied objects with their audit rows (1),
    # readiness (1) and the activation (8): 27 statements before these were folded.
    assert len(run) <= 19, "\n".join(q["sql"][:120] for q in run.captured_queries)


def test_an_audit_batch_writes_its_rows_in_one_insert_in_order(approved_namespace):
    request = approved_namespace()
    with transaction.atomic(), CaptureQueriesContext(connection) as batch, audit_batch():
        first = audit_record(actor=None, verb="one", target=request)
        with audit_batch():  # a nested block leaves its rows to the outer one
            audit_record(actor=None, verb="two", target=request)
        assert first.pk is None
        assert not AuditEvent.objects.filter(verb__in=("one", "two")).exists()
    assert len([q for q in batch.captured_queries if q["sql"].startswith("INSERT")]) == 1
    assert first.pk is not None
    assert list(AuditEvent.objects.filter(verb__in=("one", "two")).order_by("id").values_list("verb", flat=True)) == [
        "one",
        "two",
    ]


def test_an_audit_batch_that_raises_writes_nothing_and_needs_a_transaction(approved_namespace):
    request = approved_namespace()
    with pytest.raises(ZeroDivisionError), transaction.atomic(), audit_batch():
        audit_record(actor=None, verb="lost", target=request)
        1 / 0  # noqa: B018
    assert not AuditEvent.objects.filter(verb="lost").exists()
    with pytest.raises(RuntimeError, match="inside the transaction"), audit_batch():
        pass
    # Outside a block the row is written at once, as before.
    assert audit_record(actor=None, verb="now", target=request).pk is not None
