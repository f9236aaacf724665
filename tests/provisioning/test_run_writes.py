"""What one provisioning run writes to the database, and in how many statements: every guarantee's row
(the claim, the object rows before the apply, the audit row of each state change, the lease) is there
exactly once, with the round trips folded (README "Performance")."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from celery.signals import before_task_publish
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from leases.models import Lease
from provisioning import cluster
from provisioning.models import ManagedObject, Phase, ProvisioningJob
from provisioning.services.plan import resource_id_for
from provisioning.services.provision import request_provision
from provisioning.services.sweep import RESOURCE_ID_HEADER
from provisioning.tasks import provision_request
from requests_app.batch import batch_create, batch_insert, batch_update, write_batch
from requests_app.errors import InvalidState
from requests_app.models import AuditEvent, Resource, ResourceRequest
from requests_app.services import audit_record, transition_apply
from tests.conftest import require_env
from tests.factories import ResourceFactory

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
    # The claim's transaction (4 with BEGIN and COMMIT: the locking read, then one statement for the job,
    # the resource and its object rows, the request's state change and its audit row), the applied
    # objects with their audit rows and readiness (1), and the activation (3: one statement for the
    # lease, both state changes, the three audit rows and the claim's release). 27 statements before
    # these were folded; 16 before write_batch() sent each transaction's closing writes together.
    assert len(run) <= 8, "\n".join(q["sql"][:120] for q in run.captured_queries)
    opened = AuditEvent.objects.get(request=request, verb="lease_opened")
    assert opened.target_id == str(lease.pk)  # the lease's id, read back by the statement that inserted it
    assert not [q for q in run.captured_queries if q["sql"].startswith('UPDATE "provisioning_managedobject"')]


def test_a_request_failed_by_someone_else_during_the_run_is_left_as_it_is(approved_namespace, monkeypatch):
    from provisioning.services import provision
    from requests_app.models import ResourceRequest

    request = approved_namespace()
    real_apply_all = provision._apply_all

    def apply_all_then_failed_by_an_admin(claim, **kwargs):
        stored = real_apply_all(claim, **kwargs)
        ResourceRequest.objects.filter(pk=claim.request.pk).update(state="failed", error="stopped by an admin")
        return stored

    monkeypatch.setattr(provision, "_apply_all", apply_all_then_failed_by_an_admin)
    request_provision(request_id=request.pk)

    request.refresh_from_db()
    assert (request.state, request.error) == ("failed", "stopped by an admin")
    resource = Resource.objects.get(pk=request.resource_id)
    assert resource.state == "provisioning"  # the activation rolled back whole: no half-active pair
    assert not Lease.objects.filter(resource=resource).exists()
    assert not AuditEvent.objects.filter(request=request, verb="activated").exists()


def test_a_write_batch_sends_its_writes_together_as_it_ends_in_order(approved_namespace):
    request = approved_namespace()
    job = ProvisioningJob.objects.get(pk=request.pk)
    with transaction.atomic(), CaptureQueriesContext(connection) as batch, write_batch():
        first = audit_record(actor=None, verb="one", target=request)
        with write_batch():  # a nested block leaves its writes to the outer one
            audit_record(actor=None, verb="two", target=request)
            batch_update(ProvisioningJob.objects.filter(pk=job.pk), {"last_error": "noted"})
            transition_apply(request, "start_provisioning", actor=None, verb="provisioning_started", changed=[])
        assert first.pk is None
        assert not AuditEvent.objects.filter(verb__in=("one", "two")).exists()
        assert ProvisioningJob.objects.get(pk=job.pk).last_error == ""
        assert ResourceRequest.objects.get(pk=request.pk).state == "approved"
        assert all(q["sql"].startswith("SELECT") for q in batch.captured_queries)  # nothing written yet
    writes = [q["sql"] for q in batch.captured_queries if not q["sql"].startswith("SELECT")]
    assert len(writes) == 1 and writes[0].startswith("WITH ")
    assert list(AuditEvent.objects.filter(request=request).order_by("id").values_list("verb", flat=True))[-3:] == [
        "one",
        "two",
        "provisioning_started",
    ]
    assert ProvisioningJob.objects.get(pk=job.pk).last_error == "noted"
    assert ResourceRequest.objects.get(pk=request.pk).state == "provisioning"


def test_a_write_batch_that_raises_writes_nothing_and_needs_a_transaction(approved_namespace):
    request = approved_namespace()
    with pytest.raises(ZeroDivisionError), transaction.atomic(), write_batch():
        audit_record(actor=None, verb="lost", target=request)
        batch_update(ResourceRequest.objects.filter(pk=request.pk), {"error": "lost"})
        1 / 0  # noqa: B018
    assert not AuditEvent.objects.filter(verb="lost").exists()
    assert ResourceRequest.objects.get(pk=request.pk).error == ""
    with pytest.raises(RuntimeError, match="inside the transaction"), write_batch():
        pass
    # Outside a block each write is sent at once, as before.
    assert audit_record(actor=None, verb="now", target=request).pk is not None
    batch_update(ResourceRequest.objects.filter(pk=request.pk), {"error": "at once"})
    assert ResourceRequest.objects.get(pk=request.pk).error == "at once"


def test_a_condition_a_batch_missed_raises_and_the_transaction_keeps_none_of_it(approved_namespace):
    request = approved_namespace()
    job = ProvisioningJob.objects.get(pk=request.pk)
    ResourceRequest.objects.filter(pk=request.pk).update(state="failed", error="failed by an admin")

    # The request was read as approved: its state change is a compare-and-set that now misses.
    with pytest.raises(InvalidState, match="changed while"), transaction.atomic(), write_batch():
        batch_update(ProvisioningJob.objects.filter(pk=job.pk), {"last_error": "lost"})
        transition_apply(request, "start_provisioning", actor=None, verb="provisioning_started", changed=[])
        audit_record(actor=None, verb="lost", target=request)
    assert ProvisioningJob.objects.get(pk=job.pk).last_error == ""
    assert ResourceRequest.objects.get(pk=request.pk).state == "failed"
    assert not AuditEvent.objects.filter(verb__in=("lost", "provisioning_started"), request=request).exists()

    # The first condition that missed, in the order they were made, is the one raised.
    with pytest.raises(LookupError, match="first"), transaction.atomic(), write_batch():
        batch_update(
            ResourceRequest.objects.filter(pk=request.pk, state="active"),
            {"error": "x"},
            on_miss=lambda: LookupError("first"),
        )
        batch_update(
            ProvisioningJob.objects.filter(pk=job.pk, phase="gone"),
            {"last_error": "x"},
            on_miss=lambda: KeyError("second"),
        )
    # Outside a block, at once.
    with pytest.raises(LookupError):
        batch_update(
            ResourceRequest.objects.filter(pk=request.pk, state="active"),
            {"error": "x"},
            on_miss=lambda: LookupError("no"),
        )


def test_a_row_written_twice_in_one_batch_gets_both_writes_in_order(approved_namespace):
    request = approved_namespace()
    with transaction.atomic(), CaptureQueriesContext(connection) as batch, write_batch():
        batch_update(ResourceRequest.objects.filter(pk=request.pk), {"error": "first", "deliveries": 5})
        batch_update(ResourceRequest.objects.filter(pk=request.pk), {"error": "second"})
    # One statement may not update a row twice: the first write went before the second was added.
    assert len(batch) == 2
    assert ResourceRequest.objects.filter(pk=request.pk).values_list("error", "deliveries").get() == ("second", 5)


@pytest.mark.parametrize("vendor", ["postgresql", "other"])
def test_one_statement_or_one_after_another_the_batch_writes_the_same(approved_namespace, monkeypatch, vendor):
    """The PostgreSQL statement and the path of other databases (a statement per write) write the same
    rows: a new row, an update that points at it, the audit rows; and a missed condition raises in both."""
    if vendor != "postgresql":
        monkeypatch.setattr(connection, "vendor", vendor)
    request = approved_namespace()
    resource = ResourceFactory.build(
        pk=resource_id_for(request), team=request.team, owner=request.requester, created_by_request=request
    )
    resource.cluster_id = request.cluster_id
    rows = [
        ManagedObject(resource=resource, api_version="v1", kind="ConfigMap", namespace="x", name=f"c{i}")
        for i in range(3)
    ]
    lease = Lease(resource=resource, starts_at=timezone.now(), expires_at=timezone.now() + timedelta(days=1))
    lease.derive()
    with transaction.atomic(), CaptureQueriesContext(connection) as sent, write_batch():
        batch_insert(resource)
        batch_update(ResourceRequest.objects.filter(pk=request.pk), {"resource": resource, "error": "e"})
        batch_create(rows)
        batch_create([lease])
        audit_record(actor=None, verb="made", target=resource, request=request)
        audit_record(actor=None, verb="opened", target=lease, resource=resource)  # its key is not known yet
        assert all(row.pk is None for row in rows) and lease.pk is None
    assert len(sent) == (1 if vendor == "postgresql" else 5)
    assert not resource._state.adding
    # The keys the database gave, each on its own object.
    assert {row.pk: row.name for row in rows} == dict(
        ManagedObject.objects.filter(resource=resource).values_list("pk", "name")
    )
    assert Lease.objects.get(pk=lease.pk).next_notice_at == lease.next_notice_at
    assert AuditEvent.objects.get(verb="opened", resource=resource).target_id == str(lease.pk)
    assert Resource.objects.filter(pk=resource.pk).values_list("kind", "name", "state", "spec").get() == (
        resource.kind,
        resource.name,
        "active",
        resource.spec,
    )
    assert ResourceRequest.objects.filter(pk=request.pk).values_list("resource_id", "error").get() == (resource.pk, "e")
    assert AuditEvent.objects.filter(verb="made", resource=resource, target_id=str(resource.pk)).count() == 1
    with pytest.raises(LookupError), transaction.atomic(), write_batch():
        batch_update(ResourceRequest.objects.filter(pk=request.pk), {"error": "lost"})
        batch_update(ResourceRequest.objects.filter(pk=request.pk, state="gone"), {"error": "x"}, on_miss=LookupError)
    assert ResourceRequest.objects.get(pk=request.pk).error == "e"


@pytest.fixture
def published():
    """The arguments and our header of the provisioning tasks published to the broker (nobody consumes
    them here)."""
    seen: list[tuple] = []

    def keep(sender=None, body=None, headers=None, **kwargs):
        if sender == "provisioning.tasks.provision_request":
            seen.append(
                (list(body[0] if isinstance(body, tuple) else body.get("args")), headers.get(RESOURCE_ID_HEADER))
            )

    before_task_publish.connect(keep, weak=False)
    yield seen
    before_task_publish.disconnect(keep)
    from tests.integration.conftest import purge_queues

    purge_queues()


def test_the_task_message_names_the_resource_so_the_run_reads_nothing_for_its_log_lines(approved_namespace, published):
    require_env("REDIS_URL")
    told, untold = approved_namespace(name="ns-told"), approved_namespace(name="ns-untold")
    assert published == [([str(r.pk)], str(resource_id_for(r))) for r in (told, untold)]

    with CaptureQueriesContext(connection) as with_id:
        provision_request.apply(args=[str(told.pk)], headers={RESOURCE_ID_HEADER: published[0][1]})
    with CaptureQueriesContext(connection) as without:  # a message from before the id was sent
        provision_request.apply(args=[str(untold.pk)])

    for request in (told, untold):
        request.refresh_from_db()
        assert request.state == "active", request.error
    # Told, the run's first statement is its claim's; untold, the request is read before it (and its
    # deferred state with it: the state machine's mixin reads it as the row is loaded).
    assert with_id.captured_queries[0]["sql"] == "BEGIN"
    assert without.captured_queries[0]["sql"].startswith("SELECT")
    assert len(with_id) < len(without)


def test_the_claim_reads_request_and_job_in_one_locking_query_and_makes_a_missing_job(approved_namespace):
    with_job, without_job = approved_namespace(name="ns-job"), approved_namespace(name="ns-nojob")
    ProvisioningJob.objects.filter(pk=without_job.pk).delete()  # enqueued some other way: no job yet

    with CaptureQueriesContext(connection) as run:
        request_provision(request_id=with_job.pk)
    request_provision(request_id=without_job.pk)

    locking = [q["sql"] for q in run.captured_queries if "FOR UPDATE" in q["sql"]]
    assert 'FOR UPDATE OF "requests_app_resourcerequest", "provisioning_provisioningjob"' in locking[0]
    assert not any(q["sql"].startswith('SELECT "provisioning_provisioningjob"') for q in run.captured_queries)
    for request in (with_job, without_job):
        request.refresh_from_db()
        assert request.state == "active", request.error
        assert ProvisioningJob.objects.get(pk=request.pk).phase == Phase.DONE


def test_a_new_namespace_is_read_while_its_claim_is_written_and_only_once(approved_namespace, monkeypatch):
    request = approved_namespace()
    real_read, reads = cluster.read, []

    def read(ref):
        reads.append((ref.kind, threading.current_thread() is threading.main_thread()))
        return real_read(ref)

    monkeypatch.setattr(cluster, "read", read)
    request_provision(request_id=request.pk)

    request.refresh_from_db()
    assert request.state == "active", request.error
    assert reads == [("Namespace", False)]  # one read, on a pool thread, not the run's own


def test_an_audit_row_takes_a_pending_key_only_from_a_row_inserted_on_its_own(approved_namespace):
    """Its key comes from `(SELECT key FROM wN)`: one row, or the statement could not say which."""
    request = approved_namespace()
    resource = Resource.objects.get(pk=request.resource_id) if request.resource_id else None
    rows = [
        ManagedObject(resource_id=resource_id_for(request), api_version="v1", kind="ConfigMap", name=f"m{i}")
        for i in range(2)
    ]
    with pytest.raises(ValueError, match="on its own"), transaction.atomic(), write_batch():
        batch_create(rows)
        audit_record(actor=None, verb="made", target=rows[0], request=request, resource=resource)
