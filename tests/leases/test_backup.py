"""Backups before deletion, on the real API server (tests stand in for the kubelet by writing the Job's
status). The Jobs' commands themselves run against the real PostgreSQL in test_backup_command.py."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.core import mail
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from approvals.services import step_decide
from leases.models import Backup, Lease
from leases.services.reclaim_pass import reclaim_pass
from provisioning.renderers import database_secret_name
from provisioning.services.provision import request_provision
from requests_app.models import AuditEvent
from requests_app.services import request_submit
from tests.integration.conftest import approve_and_provision, namespace_gone, wait_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def backup_namespace(core, settings):
    """The namespace the backup Jobs run in (an operator creates it, labelled, with its volume claim)."""
    name = "leasehold-backups"
    settings.LEASEHOLD_BACKUP_NAMESPACE = name
    try:
        core.create_namespace({"metadata": {"name": name, "labels": {"leasehold.io/backups": "true"}}})
    except ApiException as exc:
        if exc.status != 409:
            raise
    return name


@pytest.fixture
def namespace_with_database(approved_namespace, requester, approver):
    ns_request = approved_namespace(plan="medium")
    request_provision(request_id=ns_request.pk)
    ns_request.refresh_from_db()
    namespace = ns_request.resource
    db_request = request_submit(
        requester=requester,
        team="atlas",
        kind="database",
        name="orders",
        environment="dev",
        lease_days=14,
        justification="t",
        spec={"namespace": str(namespace.pk), "storage": "1Gi"},
    )
    for step in db_request.approval_steps.all():
        step_decide(step_id=step.pk, user=approver, verdict="approve")
    request_provision(request_id=db_request.pk)
    db_request.refresh_from_db()
    assert db_request.state == "active", db_request.error
    return namespace, db_request.resource


def set_job_status(kube_api, backup: Backup, succeeded: bool) -> None:
    """Stand in for the kubelet: the local control plane runs no pods.

    The real Job controller runs, and its first sync (which sets `startTime`) writes the whole status from
    a fresh read, so a status written before it would be overwritten: wait for it, write the outcome, and
    write it again should a sync still overwrite it (a sync leaves a finished Job alone)."""
    batch = client.BatchV1Api(kube_api)
    wait_for(
        lambda: batch.read_namespaced_job_status(backup.job_name, backup.job_namespace).status.start_time,
        what="the Job controller's first sync",
    )
    condition = {"type": "Complete" if succeeded else "Failed", "status": "True"}
    status = {"conditions": [condition], ("succeeded" if succeeded else "failed"): 1 if succeeded else 3}
    wanted = [condition["type"]]
    for _ in range(5):
        batch.patch_namespaced_job_status(backup.job_name, backup.job_namespace, {"status": status})
        time.sleep(0.3)
        conditions = batch.read_namespaced_job_status(backup.job_name, backup.job_namespace).status.conditions
        if [c.type for c in conditions or []] == wanted:
            return
    pytest.fail("the Job controller kept overwriting the stand-in Job status")


def past_grace(namespace) -> object:
    lease = Lease.objects.get(resource=namespace)
    reclaim_pass(now=lease.expires_at + timedelta(minutes=1))
    lease.refresh_from_db()
    return lease.grace_until + timedelta(minutes=1)


def test_a_namespace_with_a_database_is_deleted_only_after_its_backup_succeeds_and_can_be_restored(
    namespace_with_database, backup_namespace, kube_api, core, requester, approver
):
    namespace, database = namespace_with_database
    after = past_grace(namespace)

    report = reclaim_pass(now=after)
    backup = Backup.objects.get(resource=database)
    assert backup.state == "running"
    assert backup.location.startswith(f"pvc://leasehold-backups/atlas/{namespace.namespace_name}/orders-")
    job = client.BatchV1Api(kube_api).read_namespaced_job(backup.job_name, backup_namespace)
    container = job.spec.template.spec.containers[0]
    assert container.image == "docker.io/library/postgres:16"
    env = {e.name: e for e in container.env}
    assert env["PGHOST"].value == f"orders.{namespace.namespace_name}.svc"
    assert env["PGPASSWORD"].value is None  # from the copied Secret, never a literal
    assert report.backups and not report.reclaimed
    assert core.read_namespace(namespace.namespace_name).status.phase == "Active"

    reclaim_pass(now=after)  # still running: nothing deleted, no second Job
    assert Backup.objects.filter(resource=database).count() == 1
    assert core.read_namespace(namespace.namespace_name).status.phase == "Active"

    set_job_status(kube_api, backup, succeeded=True)
    lease = Lease.objects.get(resource=namespace)

    def reclaimed():
        reclaim_pass(now=after)
        lease.refresh_from_db()
        return lease.state == "reclaimed"

    wait_for(reclaimed, what="deletion after the backup")
    assert namespace_gone(core, namespace.namespace_name)
    database.refresh_from_db()
    assert database.state == "reclaimed"
    backup.refresh_from_db()
    assert backup.state == "succeeded"
    with pytest.raises(ApiException):  # the password copy is gone once the Job finished
        core.read_namespaced_secret(backup.job_name, backup_namespace)

    # Restore: the namespace first, then the database, which is filled from the dump.
    from leases.services.restore import resource_restore

    namespace.refresh_from_db()
    ns_restore = resource_restore(resource=namespace, actor=requester)
    approve_and_provision(ns_restore, approver)
    db_restore = resource_restore(resource=database, actor=requester)
    assert db_restore.frozen["restore_from"] == backup.location
    new_database = approve_and_provision(db_restore, approver).resource
    reclaim_pass(now=after)  # starts the restore Job (when the on-commit start did not run)
    restore = Backup.objects.get(resource=new_database, kind="restore")
    job = client.BatchV1Api(kube_api).read_namespaced_job(restore.job_name, backup_namespace)
    env = {e.name: e.value for e in job.spec.template.spec.containers[0].env}
    assert env["BACKUP_FILE"] == "/backups/" + backup.location.split("/", 3)[3]
    assert env["PGHOST"] == f"orders.{namespace.namespace_name}.svc"
    assert "pg_restore" in job.spec.template.spec.containers[0].command[-1]
    set_job_status(kube_api, restore, succeeded=True)
    reclaim_pass(now=after)
    restore.refresh_from_db()
    assert restore.state == "succeeded"
    assert AuditEvent.objects.filter(verb="restore_succeeded", resource=new_database).count() == 1


def test_a_failed_backup_deletes_nothing_and_alerts(
    namespace_with_database, backup_namespace, kube_api, core, admin_user, django_capture_on_commit_callbacks
):
    namespace, database = namespace_with_database
    after = past_grace(namespace)
    reclaim_pass(now=after)
    backup = Backup.objects.get(resource=database)
    set_job_status(kube_api, backup, succeeded=False)

    with django_capture_on_commit_callbacks(execute=True):
        report = reclaim_pass(now=after)
    backup.refresh_from_db()
    assert backup.state == "failed"
    assert report.errors and "nothing was deleted" in report.errors[0]
    assert core.read_namespace(namespace.namespace_name).status.phase == "Active"
    assert client.AppsV1Api(kube_api).read_namespaced_stateful_set("orders", namespace.namespace_name)
    alert = next(m for m in mail.outbox if "backup failed" in m.subject)
    assert "ada@example.org" in alert.to
    assert AuditEvent.objects.filter(verb="backup_failed", resource=database).count() == 1
    reclaim_pass(now=after + timedelta(minutes=5))  # not retried (nor re-alerted) within the hour
    assert Backup.objects.filter(resource=database).count() == 1
    Lease.objects.get(resource=namespace).refresh_from_db()
    assert Lease.objects.get(resource=namespace).state == "reclaiming"


def test_a_database_whose_secret_is_gone_is_released_with_a_failed_backup_not_a_503(
    namespace_with_database,
    backup_namespace,
    kube_api,
    core,
    api,
    requester,
    admin_user,
    django_capture_on_commit_callbacks,
):
    """The team may delete the database's Secret (it has `edit` in its namespace). Releasing the database
    then records a failed backup, alerts and deletes nothing; it was a 503 "cluster unreachable" that
    left the lease reclaiming with no backup recorded (found by tests/api/test_schemathesis.py)."""
    namespace, database = namespace_with_database
    core.delete_namespaced_secret(database_secret_name("orders"), namespace.namespace_name)

    with django_capture_on_commit_callbacks(execute=True):
        response = api.as_(requester).post(f"/api/v1/resources/{database.pk}/release/")
    assert response.status_code == 200, response.content
    assert response.json()["state"] == "reclaiming"
    backup = Backup.objects.get(resource=database)
    assert backup.state == "failed"
    assert "password could not be read" in backup.detail
    assert client.AppsV1Api(kube_api).read_namespaced_stateful_set("orders", namespace.namespace_name)
    assert any("backup failed" in m.subject for m in mail.outbox)
    assert AuditEvent.objects.filter(verb="backup_failed", resource=database).count() == 1
