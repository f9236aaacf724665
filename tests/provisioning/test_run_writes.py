"""What one provisioning run writes to the database, and in how many statements: every guarantee's row
(the claim, the object rows before the apply, the audit row of each state change, the lease) is there
exactly once, with the round trips folded (README "Performance")."""

from __future__ import annotations

import threading

import pytest
from celery.signals import before_task_publish
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from leases.models import Lease
from provisioning import cluster
from provisioning.models import ManagedObject, Phase, ProvisioningJob
from provisioning.services.plan import resource_id_for
from provisioning.services.provision import request_provision
from provisioning.services.sweep import RESOURCE_ID_HEADER
from provisioning.tasks import provision_request
from requests_app.models import AuditEvent, Resource
from requests_app.services import audit_batch, audit_record
from tests.conftest import require_env

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
    # The claim's transaction (8 with BEGIN and COMMIT), the applied objects with their audit rows and
    # readiness (1: what the apply answers show ready is marked in the same write) and the activation (7,
    # no read of the rows the claim holds): 27 statements before these were folded, 18 before readiness
    # joined the applied objects' write, 17 before the activation stopped reading the rows again.
    assert len(run) <= 16, "\n".join(q["sql"][:120] for q in run.captured_queries)
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
