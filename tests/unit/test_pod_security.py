"""Every pod Leasehold renders passes the Pod Security Standards' `restricted` level and gets no token.

The local control plane is Kubernetes 1.20, which has no Pod Security Admission (the namespace labels are
inert there), so the rules are checked here on the rendered manifests, as the admission plugin would check
them (kubernetes.io/docs/concepts/security/pod-security-standards, the `restricted` level, which includes
`baseline`).
"""

from __future__ import annotations

import copy
import uuid
from dataclasses import replace
from datetime import UTC, datetime

import kubernetes_validate
import pytest

from leases.backup import backup_manifests, restore_manifests
from provisioning.renderers import app_manifests, database_manifests, pod_templates_hardened
from requests_app.models import Resource, ResourceRequest, Team
from tests.unit.test_renderers_app import APP, BOUND, WITH_INGRESS
from tests.unit.test_renderers_database import CTX, DB, KUBERNETES_VERSIONS, PASSWORD

RESTRICTED_VOLUMES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}
SELINUX_TYPES = ("container_t", "container_init_t", "container_kvm_t", "container_engine_t")
SAFE_SYSCTLS = {
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
}


def restricted_violations(pod: dict) -> list[str]:
    """What in a pod spec the `restricted` Pod Security level forbids (empty: it is admitted)."""
    out: list[str] = []
    pod_sc = pod.get("securityContext") or {}
    containers = [*pod.get("initContainers", []), *pod.get("containers", []), *pod.get("ephemeralContainers", [])]
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(key):
            out.append(f"{key} is set")
    if (pod_sc.get("windowsOptions") or {}).get("hostProcess"):
        out.append("pod: hostProcess")
    for volume in pod.get("volumes", []):
        kinds = set(volume) - {"name"}
        if not kinds <= RESTRICTED_VOLUMES:
            out.append(f"volume {volume['name']}: type {sorted(kinds)} is not allowed")
    for sysctl in pod_sc.get("sysctls", []):
        if sysctl["name"] not in SAFE_SYSCTLS:
            out.append(f"sysctl {sysctl['name']} is not safe")
    if pod_sc.get("runAsUser") == 0:
        out.append("pod: runAsUser 0")
    pod_seccomp = (pod_sc.get("seccompProfile") or {}).get("type")
    if pod_seccomp not in (None, "RuntimeDefault", "Localhost"):
        out.append(f"pod: seccompProfile {pod_seccomp}")
    if not containers:
        out.append("no containers")
    for c in containers:
        name, sc = c["name"], c.get("securityContext") or {}
        if sc.get("privileged"):
            out.append(f"{name}: privileged")
        if (sc.get("windowsOptions") or {}).get("hostProcess"):
            out.append(f"{name}: hostProcess")
        if sc.get("procMount", "Default") != "Default":
            out.append(f"{name}: procMount")
        if any(p.get("hostPort") for p in c.get("ports", [])):
            out.append(f"{name}: hostPort")
        if sc.get("allowPrivilegeEscalation") is not False:
            out.append(f"{name}: allowPrivilegeEscalation must be false")
        caps = sc.get("capabilities") or {}
        if "ALL" not in caps.get("drop", []):
            out.append(f"{name}: capabilities must drop ALL")
        added = set(caps.get("add", []))
        if not added <= {"NET_BIND_SERVICE"}:
            out.append(f"{name}: capabilities add {sorted(added)}")
        non_root = sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot"))
        if non_root is not True:
            out.append(f"{name}: runAsNonRoot must be true")
        if sc.get("runAsUser") == 0:
            out.append(f"{name}: runAsUser 0")
        seccomp = (sc.get("seccompProfile") or {}).get("type", pod_seccomp)
        if seccomp not in ("RuntimeDefault", "Localhost"):
            out.append(f"{name}: seccompProfile must be RuntimeDefault or Localhost, not {seccomp}")
        selinux = sc.get("seLinuxOptions") or pod_sc.get("seLinuxOptions") or {}
        if selinux.get("user") or selinux.get("role") or selinux.get("type", "container_t") not in SELINUX_TYPES:
            out.append(f"{name}: seLinuxOptions")
    return out


def pod_templates(manifests: list[dict]) -> list[tuple[str, dict]]:
    return [
        (f"{m['kind']}/{m['metadata']['name']}", m["spec"]["template"]["spec"])
        for m in manifests
        if m["kind"] in ("Deployment", "StatefulSet", "Job")
    ]


def database_resource(provider: str = "statefulset") -> Resource:
    """A database as the backup renderer sees it (in memory: the renderer reads no table)."""
    team = Team(slug="atlas", name="Atlas")
    namespace = Resource(kind="namespace", name="checkout", team=team, spec={"plan": "small"})
    return Resource(
        id=uuid.UUID("7d1b2c3e-2222-4c36-9b7b-6c2f1f0d9a33"),
        kind="database",
        name="orders",
        team=team,
        parent=namespace,
        spec={"engine": "postgres", "version": "16", "storage": "10Gi", "plan": "small"},
        created_by_request=ResourceRequest(frozen={"provider": provider}),
    )


AT = datetime(2026, 12, 6, 14, 30, 5, tzinfo=UTC)


def job_manifests(provider: str = "statefulset") -> dict[str, list[dict]]:
    database = database_resource(provider)
    return {
        "backup": backup_manifests(database=database, password=PASSWORD, at=AT),
        "restore": restore_manifests(
            database=database, password=PASSWORD, location="pvc://leasehold-backups/atlas/x.dump", at=AT
        ),
    }


RENDERED = {
    "app": app_manifests(app=APP, ctx=CTX),
    "app-bound": app_manifests(app=BOUND, ctx=CTX),
    "app-ingress": app_manifests(app=WITH_INGRESS, ctx=CTX),
    "app-no-replicas": app_manifests(app=replace(APP, replicas=0), ctx=CTX),
    "database": database_manifests(db=DB, password=PASSWORD, ctx=CTX),
}


@pytest.fixture(params=[*RENDERED, "backup", "backup-cnpg", "restore"])
def rendered(request) -> list[dict]:
    if request.param in RENDERED:
        return RENDERED[request.param]
    provider = "cloudnativepg" if request.param.endswith("cnpg") else "statefulset"
    return job_manifests(provider)[request.param.split("-")[0]]


def test_every_pod_template_we_render_passes_the_restricted_level(rendered):
    templates = pod_templates(rendered)
    assert templates
    for where, pod in templates:
        assert restricted_violations(pod) == [], where


def test_no_pod_we_render_gets_a_service_account_token(rendered):
    # None of them calls the Kubernetes API; a token in the pod would only be something to steal.
    for where, pod in pod_templates(rendered):
        assert pod["automountServiceAccountToken"] is False, where


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_the_backup_and_restore_jobs_validate_strictly_against_current_schemas(version):
    for manifests in job_manifests().values():
        for m in manifests:
            kubernetes_validate.validate(m, version, strict=True)


def test_postgres_runs_with_a_fixed_non_root_user_that_owns_its_volume():
    # The official image starts as root unless told otherwise; runAsNonRoot alone would stop it.
    ((_, pod),) = pod_templates(RENDERED["database"])
    assert pod["securityContext"]["runAsUser"] == pod["securityContext"]["fsGroup"] == 999
    for _, job in pod_templates([*job_manifests()["backup"], *job_manifests()["restore"]]):
        assert job["securityContext"]["runAsUser"] == 999


def test_the_cloudnativepg_cluster_leaves_the_operators_restricted_security_contexts_alone():
    # CloudNativePG renders the pods itself, compliant with `restricted` (non-root, RuntimeDefault seccomp,
    # no privilege escalation, all capabilities dropped) unless a Cluster overrides it. Its instance
    # manager talks to the API server, so those pods keep their (operator-made, narrow) token.
    (cluster,) = [
        m
        for m in database_manifests(db=DB, password=PASSWORD, ctx=CTX, provider="cloudnativepg")
        if m["kind"] == "Cluster"
    ]
    assert not {"seccompProfile", "securityContext", "podSecurityContext"} & set(cluster["spec"])


# --- a rollback re-applies a release rendered earlier ---------------------------------------------------------


def test_a_release_rendered_before_the_pod_settings_gets_them_when_applied_again():
    old = copy.deepcopy(RENDERED["app"])
    pod = old[0]["spec"]["template"]["spec"]
    del pod["automountServiceAccountToken"]
    pod["securityContext"] = {}
    pod["containers"][0]["securityContext"] = {"capabilities": {"add": ["NET_BIND_SERVICE"]}}
    assert restricted_violations(pod)
    hardened = pod_templates_hardened(old)
    ((_, pod),) = pod_templates(hardened)
    assert pod["automountServiceAccountToken"] is False
    assert restricted_violations(pod) == []
    assert pod["containers"][0]["securityContext"]["capabilities"] == {"add": ["NET_BIND_SERVICE"], "drop": ["ALL"]}


def test_hardening_leaves_a_current_render_as_it_is():
    assert pod_templates_hardened(copy.deepcopy(RENDERED["app-bound"])) == RENDERED["app-bound"]
    assert pod_templates_hardened(copy.deepcopy(RENDERED["database"])) == RENDERED["database"]


# --- the checker itself catches what `restricted` refuses ------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "why"),
    [
        (lambda p: p["securityContext"].pop("runAsNonRoot"), "runAsNonRoot"),
        (lambda p: p["securityContext"].update(seccompProfile={"type": "Unconfined"}), "seccompProfile"),
        (lambda p: p["securityContext"].pop("seccompProfile"), "seccompProfile"),
        (lambda p: p["containers"][0]["securityContext"].pop("allowPrivilegeEscalation"), "allowPrivilegeEscalation"),
        (lambda p: p["containers"][0]["securityContext"].update(capabilities={}), "drop ALL"),
        (
            lambda p: p["containers"][0]["securityContext"]["capabilities"].update(add=["NET_ADMIN"]),
            "capabilities add",
        ),
        (lambda p: p["containers"][0]["securityContext"].update(privileged=True), "privileged"),
        (lambda p: p["containers"][0]["securityContext"].update(runAsUser=0), "runAsUser 0"),
        (lambda p: p.update(hostNetwork=True), "hostNetwork"),
        (lambda p: p.update(volumes=[{"name": "root", "hostPath": {"path": "/"}}]), "hostPath"),
        (lambda p: p["containers"][0]["ports"].append({"containerPort": 80, "hostPort": 80}), "hostPort"),
    ],
)
def test_the_checker_refuses_what_restricted_refuses(change, why):
    manifests = copy.deepcopy(RENDERED["app"])
    ((_, pod),) = pod_templates(manifests)
    change(pod)
    violations = restricted_violations(pod)
    assert any(why in v for v in violations), violations
