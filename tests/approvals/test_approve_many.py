"""Approve-many decides its steps a chunk at a time, each chunk in one transaction (committed data, as in
production: row locks, and the notices sent once the chunks are committed)."""

from __future__ import annotations

import uuid

import pytest
from django.core import mail
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from approvals import notifications
from approvals.models import Decision
from approvals.services import APPROVE_MANY_CHUNK, steps_approve_many
from requests_app import services
from requests_app.models import AuditEvent, OutgoingMail, ResourceRequest
from tests.conftest import namespace_body
from tests.factories import UserFactory

# needs PostgreSQL: concurrent decisions, row locks and pg_stat_activity
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.integration]


def open_connections() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()")
        return cursor.fetchone()[0]


def test_a_batch_larger_than_the_concurrency_decides_every_step_once_and_answers_in_order(
    api, requester, approver, teammate
):
    filed = [
        api.as_(requester).post("/api/v1/requests/", namespace_body(name=f"many{i}"), format="json").json()
        for i in range(APPROVE_MANY_CHUNK * 2 + 1)
    ]
    steps = [body["approval"]["steps"][0]["id"] for body in filed]
    unknown = str(uuid.uuid4())
    before = open_connections()

    response = api.as_(approver).post(
        "/api/v1/approvals/approve-many/", {"steps": [steps[0], unknown, *steps[1:], steps[0]]}, format="json"
    )

    assert response.status_code == 200
    results = response.json()["results"]
    assert [r["step_id"] for r in results] == [steps[0], unknown, *steps[1:]]
    assert [r["ok"] for r in results] == [True, False, *[True] * (len(steps) - 1)]
    assert results[1]["detail"] == "No such step."
    for body in filed:
        assert ResourceRequest.objects.get(pk=body["id"]).state == "approved"
        assert AuditEvent.objects.filter(request_id=body["id"], verb="step_approved").count() == 1
    assert open_connections() == before  # no connection left open by the batch


def test_a_refusal_in_a_batch_leaves_the_other_decisions_standing(api, requester, approver):
    filed = [
        api.as_(requester).post("/api/v1/requests/", namespace_body(name=f"other{i}"), format="json").json()
        for i in range(4)
    ]
    ids = [body["approval"]["steps"][0]["id"] for body in filed]
    assert api.as_(approver).post(f"/api/v1/approvals/{ids[1]}/approve/", {}, format="json").status_code == 200

    results = api.post("/api/v1/approvals/approve-many/", {"steps": ids}, format="json").json()["results"]

    assert [r["ok"] for r in results] == [True, False, True, True]
    assert "nothing to decide" in results[1]["detail"]
    assert all(ResourceRequest.objects.get(pk=body["id"]).state == "approved" for body in filed)
    assert AuditEvent.objects.filter(verb="step_approved").count() == 4


def test_each_decision_of_a_batch_has_its_notice_sent_together_after_the_decisions(
    api, requester, approver, monkeypatch
):
    """approvals.notifications.collecting(): the notices are composed once every decision committed, read
    in one query and delivered over one connection; one that cannot be composed leaves the others."""
    filed = [
        api.as_(requester).post("/api/v1/requests/", namespace_body(name=f"told{i}"), format="json").json()
        for i in range(APPROVE_MANY_CHUNK + 2)
    ]
    steps = [body["approval"]["steps"][0]["id"] for body in filed]
    broken = ResourceRequest.objects.get(pk=filed[2]["id"]).title
    real_subject = notifications._subject

    def subject(request, text):
        if request.title == broken:
            raise RuntimeError("cannot compose")
        return real_subject(request, text)

    monkeypatch.setattr(notifications, "_subject", subject)
    opened = []
    real_get_connection = services.get_connection
    monkeypatch.setattr(services, "get_connection", lambda **kw: opened.append(1) or real_get_connection(**kw))
    mail.outbox.clear()

    results = api.as_(approver).post("/api/v1/approvals/approve-many/", {"steps": steps}, format="json").json()

    assert all(r["ok"] for r in results["results"])
    told = sorted(m.subject for m in mail.outbox)
    assert told == sorted(
        f"[Leasehold] Approved by frank: {ResourceRequest.objects.get(pk=b['id']).title} (dev)"
        for b in filed
        if b is not filed[2]
    )
    assert len(opened) == 1  # one connection for the whole batch
    assert OutgoingMail.objects.filter(topic="decision notice", state="pending").count() == 0
    assert AuditEvent.objects.filter(verb="step_approved").count() == len(steps)


def test_a_chunk_costs_a_few_statements_of_its_own_and_four_writes_per_decision(file_request, approver):
    """Per chunk: the step's requests, their rows and their steps locked, the decisions so far, and one
    statement with every step's and request's state change and every audit row (write_batch); per
    decision: the decision and its provisioning job."""
    filed = [file_request() for _ in range(APPROVE_MANY_CHUNK + 2)]
    steps = [str(r.approval_steps.get().pk) for r in filed]

    # Inside a caller's transaction the notices wait for its commit: only the decisions are counted.
    with transaction.atomic(), CaptureQueriesContext(connection) as ctx:
        outcomes = steps_approve_many(step_ids=steps, user=approver)

    assert all(o.ok for o in outcomes)
    statements = [q["sql"] for q in ctx.captured_queries]
    batches = [sql for sql in statements if sql.startswith("WITH ")]
    assert len(batches) == 2  # one per chunk, each with every state change and audit row of its chunk
    assert all('INSERT INTO "requests_app_auditevent"' in sql for sql in batches)
    assert not [sql for sql in statements if sql.startswith(('INSERT INTO "requests_app_auditevent"', "UPDATE"))]
    events = AuditEvent.objects.filter(request__in=filed)
    assert events.filter(verb="step_approved").count() == events.filter(verb="approved").count() == len(filed)
    assert events.filter(verb="step_closed").count() == len(filed)
    chunk_reads = [sql for sql in statements if "FOR UPDATE" in sql]
    assert len(chunk_reads) == 4  # requests, then steps, per chunk
    assert len(statements) <= 2 * len(filed) + 2 * 8 + 6, "\n".join(sql[:100] for sql in statements)


def test_a_request_the_approver_filed_is_refused_and_audited_without_undoing_its_chunk(file_request, approver):
    filer = UserFactory(username="fiona", groups=["team-atlas", "platform-approvers"])
    mine = file_request(by=filer)
    others = [file_request() for _ in range(2)]
    steps = [str(r.approval_steps.get().pk) for r in (others[0], mine, others[1])]

    outcomes = steps_approve_many(step_ids=steps, user=filer)

    assert [o.ok for o in outcomes] == [True, False, True]
    assert "filed" in outcomes[1].detail
    assert ResourceRequest.objects.get(pk=mine.pk).state == "pending_approval"
    assert not Decision.objects.filter(step__request=mine).exists()
    assert AuditEvent.objects.filter(request=mine, verb="decision_refused", actor=filer).count() == 1
    assert all(ResourceRequest.objects.get(pk=r.pk).state == "approved" for r in others)


def test_the_notices_of_a_batch_are_queued_in_one_insert_and_each_delivered(file_request, approver):
    filed = [file_request() for _ in range(3)]
    steps = [str(r.approval_steps.get().pk) for r in filed]
    mail.outbox.clear()

    with CaptureQueriesContext(connection) as ctx:
        steps_approve_many(step_ids=steps, user=approver)

    inserts = [q["sql"] for q in ctx.captured_queries if q["sql"].startswith('INSERT INTO "requests_app_outgoingmail"')]
    assert len(inserts) == 1
    assert sorted(m.subject for m in mail.outbox) == sorted(
        f"[Leasehold] Approved by frank: {r.title} (dev)" for r in filed
    )
    assert OutgoingMail.objects.filter(topic="decision notice", state="sent").count() == len(filed)
