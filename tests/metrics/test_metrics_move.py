"""The metrics move when the things they count happen: real services, in this process (the worker's
own process is scraped in test_worker_metrics.py). Counters are process-wide, so tests compare a
scrape before with one after."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.conf import settings
from django.core.management import call_command

from approvals.services import step_decide
from leases.models import Lease, ReclaimPass
from provisioning.services.provision import request_provision
from provisioning.tasks import provision_request, sweep_stuck_requests
from requests_app.models import Heartbeat
from tests.faults.proxy import Rule
from tests.leases.test_backup import past_grace, set_job_status

from .conftest import file_namespace

pytestmark = pytest.mark.django_db


def test_filing_a_request_moves_the_requests_gauge_and_the_filed_counter(
    scrape, requester, django_capture_on_commit_callbacks
):
    before = scrape()
    with django_capture_on_commit_callbacks(execute=True):
        file_namespace(requester)
    after = scrape()
    live = {"kind": "namespace", "state": "pending_approval", "team": "atlas"}
    assert after.value("leasehold_requests", **live) == before.value("leasehold_requests", **live) + 1
    filed = {"kind": "namespace", "action": "create", "team": "atlas"}
    assert (
        after.value("leasehold_requests_filed_total", **filed)
        == before.value("leasehold_requests_filed_total", **filed) + 1
    )


# needs Redis: without a broker the provisioning task runs at once (eagerly) and moves the request on
@pytest.mark.integration
def test_deciding_a_step_moves_the_decision_histogram_and_empties_the_queue(
    scrape, requester, approver, django_capture_on_commit_callbacks
):
    request = file_namespace(requester)
    step = request.approval_steps.get(state="pending")
    waiting = scrape()
    assert waiting.value("leasehold_approval_queue_depth", group="platform-approvers") == 1
    assert waiting.has("leasehold_approval_oldest_pending_age_seconds", group="platform-approvers")
    assert waiting.value("leasehold_approval_escalation_threshold_seconds") == settings.APPROVAL_ESCALATION_HOURS * 3600

    with django_capture_on_commit_callbacks(execute=True):
        step_decide(step_id=step.pk, user=approver, verdict="approve")
    decided = scrape()
    count = "leasehold_approval_step_decided_seconds_count"
    labels = {"step": "platform", "verdict": "approved"}
    assert decided.value(count, **labels) == waiting.value(count, **labels) + 1
    assert not decided.has("leasehold_approval_queue_depth", group="platform-approvers")
    live = {"kind": "namespace", "team": "atlas"}
    assert decided.value("leasehold_requests", state="approved", **live) == 1
    assert decided.value("leasehold_requests", state="pending_approval", **live) == 0


def test_provisioning_on_the_api_server_counts_api_calls_by_verb_and_the_time_to_active(
    scrape, approved_namespace, django_capture_on_commit_callbacks
):
    request = approved_namespace()
    before = scrape()
    with django_capture_on_commit_callbacks(execute=True):
        request_provision(request_id=request.pk)
    request.refresh_from_db()
    assert request.state == "active", request.error
    after = scrape()

    def delta(name: str, **labels: str) -> float:
        return after.value(name, **labels) - before.value(name, **labels)

    objects = request.resource.managed_objects.count()
    assert delta("leasehold_kubernetes_api_requests_total", verb="apply") >= objects
    assert delta("leasehold_kubernetes_api_requests_total", verb="get") >= 1
    assert delta("leasehold_kubernetes_api_request_duration_seconds_count", verb="apply") >= objects
    assert delta("leasehold_request_time_to_active_seconds_count", kind="namespace", action="create") == 1
    assert after.value("leasehold_requests", kind="namespace", state="active", team="atlas") == 1
    assert after.value("leasehold_leases", state="active") == 1


def test_a_refused_provisioning_counts_an_attempt_and_a_failure_by_its_reason(
    scrape, approved_namespace, core, cleanup_namespaces, unique_name, django_capture_on_commit_callbacks
):
    """Someone else's namespace of the same name: Leasehold refuses to take it over (reason `refused`)."""
    core.create_namespace({"metadata": {"name": f"atlas-{unique_name}"}})
    request = approved_namespace(unique_name)
    before = scrape()
    with django_capture_on_commit_callbacks(execute=True):
        provision_request.apply(args=[str(request.pk)])
    request.refresh_from_db()
    assert request.state == "failed" and "does not belong" in request.error
    after = scrape()
    failures = "leasehold_provisioning_failures_total"
    assert after.value(failures, reason="refused") == before.value(failures, reason="refused") + 1
    attempts = "leasehold_provisioning_attempts_total"
    assert after.value(attempts) == before.value(attempts) + 1


def test_a_forbidden_write_counts_an_api_error_by_verb_and_status_and_a_failure_forbidden(
    scrape, approved_namespace, through_the_proxy, django_capture_on_commit_callbacks
):
    through_the_proxy.add(Rule("status", method="PATCH", path=r"/networkpolicies/", status=403))
    request = approved_namespace()
    before = scrape()
    with django_capture_on_commit_callbacks(execute=True):
        provision_request.apply(args=[str(request.pk)])
    request.refresh_from_db()
    assert request.state == "failed", request.state
    after = scrape()
    errors = "leasehold_kubernetes_api_errors_total"
    assert after.value(errors, verb="apply", status="403") == before.value(errors, verb="apply", status="403") + 1
    failures = "leasehold_provisioning_failures_total"
    assert after.value(failures, reason="forbidden") == before.value(failures, reason="forbidden") + 1


def test_a_transient_error_counts_api_errors_by_status_and_a_retry(scrape, approved_namespace, through_the_proxy):
    """503 on the first writes: the call is retried in-process (LEASEHOLD_K8S_RETRIES), then the task
    is retried (eagerly here), and that run gets through."""
    attempts = settings.LEASEHOLD_K8S_RETRIES
    through_the_proxy.add(Rule("status", method="PATCH", status=503, retry_after=0, first=attempts))
    request = approved_namespace()
    before = scrape()
    provision_request.apply(args=[str(request.pk)])
    request.refresh_from_db()
    assert request.state == "active", request.error
    after = scrape()
    errors = "leasehold_kubernetes_api_errors_total"
    assert (
        after.value(errors, verb="apply", status="503") == before.value(errors, verb="apply", status="503") + attempts
    )
    retries = "leasehold_provisioning_retries_total"
    assert after.value(retries, reason="unavailable") == before.value(retries, reason="unavailable") + 1
    runs = "leasehold_provisioning_attempts_total"
    assert after.value(runs) == before.value(runs) + 2


def test_a_reclamation_pass_records_its_end_and_outcomes_for_the_metrics(scrape, approved_namespace):
    request = approved_namespace()
    request_provision(request_id=request.pk)
    lease = Lease.objects.get(resource__created_by_request=request)
    before = scrape()
    assert not before.has("leasehold_reclaim_last_success_timestamp_seconds")

    started = time.time()
    call_command("reclaim_leases", "--now", (lease.expires_at + timedelta(minutes=1)).isoformat())
    after = scrape()
    assert ReclaimPass.objects.get().origin == "command"
    assert started <= after.value("leasehold_reclaim_last_success_timestamp_seconds") <= time.time()
    assert after.value("leasehold_reclaim_last_pass_completed") == 1
    assert after.value("leasehold_reclaim_last_pass_outcomes", outcome="to_grace") == 1
    assert after.value("leasehold_reclaim_last_pass_outcomes", outcome="errors") == 0
    assert after.value("leasehold_reclaim_last_pass_duration_seconds") > 0
    assert after.value("leasehold_leases", state="grace") == 1
    assert after.value("leasehold_leases", state="active") == 0
    outcomes = "leasehold_reclaim_outcomes_total"
    assert after.value(outcomes, outcome="to_grace") == before.value(outcomes, outcome="to_grace") + 1
    duration = "leasehold_reclaim_pass_duration_seconds_count"
    assert after.value(duration) == before.value(duration) + 1

    call_command("reclaim_leases", "--dry-run")  # a dry run is not a pass
    assert ReclaimPass.objects.count() == 1


def test_a_failed_backup_counts_in_backups_failed(
    scrape, namespace_with_database, backup_namespace, kube_api, django_capture_on_commit_callbacks
):
    namespace, database = namespace_with_database
    after_grace = past_grace(namespace)
    call_command("reclaim_leases", "--now", after_grace.isoformat())  # starts the backup Job
    before = scrape()
    assert before.value("leasehold_backups_running", kind="dump") == 1
    backup = database.backups.get()
    set_job_status(kube_api, backup, succeeded=False)
    with django_capture_on_commit_callbacks(execute=True):
        call_command("reclaim_leases", "--now", after_grace.isoformat())
    after = scrape()
    failed = {"kind": "dump", "outcome": "failed"}
    assert after.value("leasehold_backups_total", **failed) == before.value("leasehold_backups_total", **failed) + 1
    assert after.value("leasehold_backups_running", kind="dump") == 0
    assert after.value("leasehold_reclaim_last_pass_outcomes", outcome="errors") >= 1  # "nothing was deleted"


def test_every_periodic_job_that_runs_leaves_a_heartbeat_and_others_do_not(scrape, approved_namespace):
    started = time.time()
    call_command("run_periodic", "--once")
    served = scrape()
    for job in settings.CELERY_BEAT_SCHEDULE.values():
        assert (
            started
            <= served.value("leasehold_periodic_last_success_timestamp_seconds", task=job["task"])
            <= time.time()
        )
    Heartbeat.objects.all().delete()
    provision_request.apply(args=[str(approved_namespace().pk)])
    assert not Heartbeat.objects.exists()
    sweep_stuck_requests.apply()
    assert list(Heartbeat.objects.values_list("task", flat=True)) == ["provisioning.tasks.sweep_stuck_requests"]
