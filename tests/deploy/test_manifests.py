"""deploy/: what every overlay renders, checked object by object (no services needed).

The server-side dry-run against the real API server is in test_dry_run.py.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator

import kubernetes_validate
import pytest
import yaml

from tests.deploy.conftest import OVERLAYS, ROOT

# Every name the settings read a secret from (config/settings.py, config/ldap.py, config/email.py).
SECRET_NAMES = {"SECRET_KEY", "DATABASE_URL", "REDIS_URL", "LDAP_BIND_PASSWORD", "EMAIL_HOST_PASSWORD", "EMAIL_URL"}
CONTAINERFILE_UID = 10001


def find(objects: list[dict], kind: str, name: str) -> dict:
    matches = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(matches) == 1, f"{len(matches)} {kind} named {name}"
    return matches[0]


def pod_templates(objects: list[dict]) -> Iterator[tuple[str, dict]]:
    """(kind/name, pod spec) of every workload."""
    for obj in objects:
        spec = obj.get("spec", {})
        if obj["kind"] == "CronJob":
            spec = spec["jobTemplate"]["spec"]
        if obj["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob"):
            yield f"{obj['kind']}/{obj['metadata']['name']}", spec["template"]["spec"]


def containers(pod: dict) -> list[dict]:
    return pod.get("initContainers", []) + pod["containers"]


def test_there_are_a_small_and_a_production_overlay():
    assert {"small", "production"} <= set(OVERLAYS)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_object_is_valid_for_a_current_kubernetes(rendered, overlay):
    # The schemas of the newest release kubernetes-validate knows, and of 1.25, the oldest release that
    # serves only batch/v1 CronJobs and policy/v1 PodDisruptionBudgets.
    for version in ("1.25.0", kubernetes_validate.latest_version()):
        for obj in rendered[overlay]:
            kubernetes_validate.validate(obj, version, strict=True)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_namespaced_object_names_its_namespace(rendered, overlay):
    # `kubectl apply` would otherwise put it in whatever namespace the operator's context points at.
    cluster_wide = {"Namespace", "ClusterRole", "ClusterRoleBinding"}
    for obj in rendered[overlay]:
        if obj["kind"] not in cluster_wide:
            assert obj["metadata"].get("namespace") in ("leasehold", "leasehold-backups"), obj["metadata"]["name"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_pod_meets_pod_security_restricted(rendered, overlay):
    templates = dict(pod_templates(rendered[overlay]))
    assert {"Deployment/leasehold-web", "Deployment/leasehold-worker", "Deployment/leasehold-beat"} <= set(templates)
    assert {"CronJob/leasehold-reclaim", "Job/leasehold-migrate"} <= set(templates)
    for where, pod in templates.items():
        context = pod["securityContext"]
        assert context["runAsNonRoot"] is True, where
        assert context["runAsUser"] == CONTAINERFILE_UID and context["runAsUser"] != 0, where
        assert context["seccompProfile"] == {"type": "RuntimeDefault"}, where
        assert not any(pod.get(k) for k in ("hostNetwork", "hostPID", "hostIPC")), where
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        assert not any("hostPath" in v for v in volumes.values()), where
        for container in containers(pod):
            sc = container["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False, where
            assert sc["capabilities"] == {"drop": ["ALL"]}, where
            assert sc.get("privileged", False) is False, where
            assert sc["readOnlyRootFilesystem"] is True, where
            tmp = [m for m in container["volumeMounts"] if m["mountPath"] == "/tmp"]
            assert len(tmp) == 1 and "emptyDir" in volumes[tmp[0]["name"]], where
            assert container["image"] == "registry.example.org/platform/leasehold:0.1.0", where
            assert container["resources"]["requests"] and container["resources"]["limits"], where


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_namespaces_enforce_pod_security_restricted(rendered, overlay):
    for name in ("leasehold", "leasehold-backups"):
        labels = find(rendered[overlay], "Namespace", name)["metadata"]["labels"]
        assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    backups = find(rendered[overlay], "Namespace", "leasehold-backups")["metadata"]["labels"]
    assert backups["leasehold.io/backups"] == "true"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_no_secret_is_in_a_config_map_and_every_secret_comes_from_the_secret(rendered, overlay):
    objects = rendered[overlay]
    assert not [o for o in objects if o["kind"] == "Secret"], "the operator creates leasehold-secrets, not deploy/"
    config_maps = [o for o in objects if o["kind"] == "ConfigMap"]
    assert config_maps
    for config_map in config_maps:
        for key, value in config_map.get("data", {}).items():
            assert key not in SECRET_NAMES, key
            assert not re.search(r"PASSWORD|SECRET|TOKEN|KEY", key) or key.endswith("_FILE"), key
            assert not re.search(r"://[^/@\s]*:[^/@\s]*@", value), f"{key} holds credentials"
            if key.endswith("_FILE"):
                assert value.startswith("/run/secrets/leasehold/"), key
    for where, pod in pod_templates(objects):
        for container in containers(pod):
            env = {e["name"]: e for e in container.get("env", [])}
            assert env["SECRET_KEY_FILE"]["value"] == "/run/secrets/leasehold/SECRET_KEY", where
            for name in ("DATABASE_URL", "REDIS_URL"):
                assert env[name]["valueFrom"]["secretKeyRef"]["name"] == "leasehold-secrets", where
            secrets = {m["name"] for m in container["volumeMounts"] if m["mountPath"] == "/run/secrets/leasehold"}
            volumes = {v["name"]: v for v in pod["volumes"]}
            assert [volumes[s]["secret"]["secretName"] for s in secrets] == ["leasehold-secrets"], where


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_ingress_routes_only_to_the_web_port(rendered, overlay):
    objects = rendered[overlay]
    ingresses = [o for o in objects if o["kind"] == "Ingress"]
    assert ingresses
    web = find(objects, "Service", "leasehold-web")
    assert [(p["name"], p["targetPort"]) for p in web["spec"]["ports"]] == [("http", "http")]
    pod = dict(pod_templates(objects))["Deployment/leasehold-web"]
    ports = {p["name"]: p["containerPort"] for p in pod["containers"][0]["ports"]}
    assert ports == {"http": 8000, "metrics": 9100}
    for ingress in ingresses:
        backends = [p["backend"]["service"] for r in ingress["spec"]["rules"] for p in r["http"]["paths"]]
        assert "defaultBackend" not in ingress["spec"]
        assert backends and all(b == {"name": "leasehold-web", "port": {"name": "http"}} for b in backends)
    metrics = find(objects, "Service", "leasehold-metrics")
    assert metrics["spec"]["type"] == "ClusterIP"
    assert [(p["port"], p["targetPort"]) for p in metrics["spec"]["ports"]] == [(9100, "metrics")]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_web_pods_are_probed_replicated_and_protected_from_disruption(rendered, overlay):
    objects = rendered[overlay]
    web = find(objects, "Deployment", "leasehold-web")
    assert web["spec"]["replicas"] >= 2
    container = web["spec"]["template"]["spec"]["containers"][0]
    assert container["args"] == ["web"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    # The probes' Host header must be allowed, or Django answers them 400.
    hosts = {h["value"] for p in ("readinessProbe", "livenessProbe") for h in container[p]["httpGet"]["httpHeaders"]}
    config = next(o for o in objects if o["kind"] == "ConfigMap")["data"]
    assert hosts <= set(config["ALLOWED_HOSTS"].split(","))
    budget = find(objects, "PodDisruptionBudget", "leasehold-web")
    assert budget["apiVersion"] == "policy/v1"
    assert budget["spec"]["selector"]["matchLabels"].items() <= web["spec"]["template"]["metadata"]["labels"].items()
    assert budget["spec"]["maxUnavailable"] < web["spec"]["replicas"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_exactly_one_beat_runs_and_an_upgrade_stops_it_first(rendered, overlay):
    objects = rendered[overlay]
    beat = find(objects, "Deployment", "leasehold-beat")
    assert beat["spec"]["replicas"] == 1
    assert beat["spec"]["strategy"] == {"type": "Recreate"}
    runs_beat = [where for where, pod in pod_templates(objects) for c in pod["containers"] if c["args"][0] == "beat"]
    assert runs_beat == ["Deployment/leasehold-beat"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_reclamation_runs_from_one_cron_job_and_not_from_beat(rendered, overlay):
    objects = rendered[overlay]
    cron = find(objects, "CronJob", "leasehold-reclaim")
    spec = cron["spec"]
    assert cron["apiVersion"] == "batch/v1"
    assert spec["concurrencyPolicy"] == "Forbid"
    assert spec["successfulJobsHistoryLimit"] >= 1 and spec["failedJobsHistoryLimit"] >= 1
    assert spec["schedule"] == "*/15 * * * *"
    # A pass that has not started within 5 minutes is skipped; one that runs is ended before the next is due.
    assert 0 < spec["startingDeadlineSeconds"] <= 300
    assert 0 < spec["jobTemplate"]["spec"]["activeDeadlineSeconds"] < 15 * 60
    pod = spec["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["containers"][0]["args"] == ["manage", "reclaim_leases"]
    assert pod["restartPolicy"] == "Never"
    config = next(o for o in objects if o["kind"] == "ConfigMap")["data"]
    assert config["LEASEHOLD_RECLAIM_SCHEDULE"] == "cron"
    assert "reclaim-leases" not in beat_schedule(config)


def beat_schedule(config: dict[str, str]) -> list[str]:
    """The names in CELERY_BEAT_SCHEDULE when the settings load with `config` (in a fresh process)."""
    env = {**os.environ, **config, "SECRET_KEY": "test-only", "DATABASE_URL": "sqlite:///:memory:"}
    # The examples' directory and mail server are not needed to read the schedule, nor the pod's metrics
    # directory (the image's entry point makes it).
    for name in ("LDAP_URI", "LDAP_BIND_PASSWORD_FILE", "EMAIL_HOST", "PROMETHEUS_MULTIPROC_DIR"):
        env.pop(name, None)
    done = subprocess.run(
        [sys.executable, "-c", "from config import settings; print(' '.join(settings.CELERY_BEAT_SCHEDULE))"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout.split()


def test_beat_keeps_the_reclamation_pass_by_default_and_refuses_an_unknown_schedule():
    assert "reclaim-leases" in beat_schedule({})
    assert "follow-reclaiming-leases" in beat_schedule({"LEASEHOLD_RECLAIM_SCHEDULE": "cron"})
    with pytest.raises(subprocess.CalledProcessError) as failed:
        beat_schedule({"LEASEHOLD_RECLAIM_SCHEDULE": "hourly"})
    assert "LEASEHOLD_RECLAIM_SCHEDULE must be beat or cron" in failed.value.stderr


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_migration_job_runs_migrate_and_new_pods_wait_for_it(rendered, overlay):
    objects = rendered[overlay]
    job = find(objects, "Job", "leasehold-migrate")
    assert job["spec"]["template"]["spec"]["containers"][0]["args"] == ["manage", "migrate", "--no-input"]
    for name in ("leasehold-web", "leasehold-worker", "leasehold-beat"):
        pod = find(objects, "Deployment", name)["spec"]["template"]["spec"]
        assert [c["args"] for c in pod["initContainers"]] == [["wait-for-migrations"]], name


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_pods_use_exactly_the_rbac_of_platform_rbac(rendered, overlay):
    objects = rendered[overlay]
    role = ROOT / "platform" / "rbac" / "leasehold" / "leasehold.yaml"
    shipped = [d for d in yaml.safe_load_all(role.read_text()) if d]
    rbac_kinds = {"ServiceAccount", "Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding"}
    assert [o for o in objects if o["kind"] in rbac_kinds] == shipped
    for where, pod in pod_templates(objects):
        assert pod["serviceAccountName"] == "leasehold", where


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_network_policies_deny_by_default_and_admit_the_ingress_controller_and_prometheus(rendered, overlay):
    policies = {o["metadata"]["name"]: o["spec"] for o in rendered[overlay] if o["kind"] == "NetworkPolicy"}
    deny = policies["leasehold-default-deny"]
    assert deny["podSelector"] == {} and set(deny["policyTypes"]) == {"Ingress", "Egress"} and "ingress" not in deny
    web = policies["leasehold-web-ingress"]["ingress"]
    assert [p["port"] for rule in web for p in rule["ports"]] == [8000]
    metrics = policies["leasehold-metrics-ingress"]["ingress"]
    assert [p["port"] for rule in metrics for p in rule["ports"]] == [9100]
    egress = {p["port"] for rule in policies["leasehold-egress"]["egress"] for p in rule["ports"]}
    assert {53, 5432, 6379, 389, 636, 443, 6443, 587, 25} <= egress


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_backup_volume_claim_is_where_the_settings_say(rendered, overlay):
    objects = rendered[overlay]
    config = next(o for o in objects if o["kind"] == "ConfigMap")["data"]
    claim = find(objects, "PersistentVolumeClaim", config["LEASEHOLD_BACKUP_PVC"])
    assert claim["metadata"]["namespace"] == config["LEASEHOLD_BACKUP_NAMESPACE"]
    assert config["LEASEHOLD_SERVICE_NAMESPACE"] == "leasehold"
