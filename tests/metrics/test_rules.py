"""The alerting rules (deploy/monitoring): valid, the same in the plain file and the PrometheusRule, proven
by promtool's own check and unit tests, and naming only metrics that /metrics serves."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from django.utils import timezone

from leases.models import ReclaimPass
from requests_app.services import heartbeat_record

ROOT = Path(__file__).resolve().parents[2]
MONITORING = ROOT / "deploy" / "monitoring"
RULES = MONITORING / "leasehold-rules.yaml"
ALERTS = {
    "LeaseholdApprovalStepPastEscalation",
    "LeaseholdProvisioningFailures",
    "LeaseholdReclaimPassMissing",
    "LeaseholdReclaimPassNeverCompleted",
    "LeaseholdBackupFailed",
    "LeaseholdBeatNotRunning",
    "LeaseholdMetricsDatabaseDown",
    "LeaseholdClusterUnreachable",
}


def promtool() -> str:
    found = shutil.which("promtool")
    if not found:
        pytest.fail("promtool is missing: `platform/ensure-packages.sh prometheus` installs it (make test does)")
    return found


def rules() -> list[dict]:
    return [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]


def test_the_rules_file_has_every_alert_each_with_a_severity_and_a_summary():
    assert {rule["alert"] for rule in rules()} == ALERTS
    for rule in rules():
        assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule["alert"]


def test_the_prometheusrule_manifest_holds_the_same_groups():
    manifest = yaml.safe_load((MONITORING / "prometheusrule.yaml").read_text())
    assert manifest["apiVersion"] == "monitoring.coreos.com/v1" and manifest["kind"] == "PrometheusRule"
    assert manifest["spec"]["groups"] == yaml.safe_load(RULES.read_text())["groups"]


@pytest.mark.integration  # needs promtool, which `make test` installs
def test_promtool_accepts_the_rules_and_their_unit_tests_pass():
    checked = subprocess.run([promtool(), "check", "rules", str(RULES)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(ALERTS)} rules found" in checked.stdout
    tested = subprocess.run(
        [promtool(), "test", "rules", str(MONITORING / "tests" / "leasehold-rules.test.yaml")],
        capture_output=True,
        text=True,
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr
    unit_tests = yaml.safe_load((MONITORING / "tests" / "leasehold-rules.test.yaml").read_text())["tests"]
    tested_alerts = {case["alertname"] for test in unit_tests for case in test["alert_rule_test"]}
    assert tested_alerts == ALERTS


@pytest.mark.django_db
def test_every_metric_the_rules_name_is_served(scrape):
    heartbeat_record(task="provisioning.tasks.sweep_stuck_requests")
    now = timezone.now()
    ReclaimPass.objects.create(started_at=now, finished_at=now, duration_seconds=1, completed=True, origin="command")
    served = scrape().names()
    named = {name for rule in rules() for name in re.findall(r"\bleasehold_[a-z0-9_]+", rule["expr"])}
    assert named and named <= served, sorted(named - served)


def test_kustomize_renders_the_monitoring_directory():
    kubectl = shutil.which("kubectl")
    if not kubectl:
        pytest.skip("kubectl is not installed")
    rendered = subprocess.run([kubectl, "kustomize", str(MONITORING)], capture_output=True, text=True)
    assert rendered.returncode == 0, rendered.stderr
    kinds = {doc["kind"] for doc in yaml.safe_load_all(rendered.stdout)}
    assert kinds == {"PrometheusRule", "PodMonitor"}
