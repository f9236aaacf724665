"""Backups before deletion: a Kubernetes Job runs pg_dump into the backup volume.

Data is never destroyed without a restore point: a database (or a namespace holding databases) is
deleted only once every backup Job has succeeded. A failed backup stops that deletion and alerts.
"""

from __future__ import annotations

from datetime import datetime

from django.conf import settings

from provisioning import cluster
from provisioning.errors import ClusterError, PermanentClusterError
from provisioning.kinds.database import database_spec_of
from provisioning.renderers import LABEL_RESOURCE, POSTGRES_IMAGE, database_connection
from provisioning.services.plan import database_secret_ref, stored_password
from requests_app import kinds
from requests_app.models import Resource

from .kinds import LEASE_KINDS, backed_up_kinds

# The dump is written to a partial file and renamed, so a killed Job never leaves a file that looks
# complete; a failed pg_dump exits the script with its own status (no pipe hides it) and its partial
# file is removed (pg_dump creates it before connecting). Both Jobs are run against a real PostgreSQL
# in tests/leases/test_backup_command.py.
PG_DUMP_SCRIPT = (
    'set -eu; mkdir -p "$(dirname "$BACKUP_FILE")"; '
    "trap 'rm -f \"$BACKUP_FILE.partial\"' EXIT; "
    'pg_dump --format=custom --no-owner --file="$BACKUP_FILE.partial"; '
    'mv "$BACKUP_FILE.partial" "$BACKUP_FILE"'
)
# Restores the dump into the recreated (empty) database; stops at the first error.
PG_RESTORE_SCRIPT = 'set -eu; pg_restore --no-owner --exit-on-error --dbname="$PGDATABASE" "$BACKUP_FILE"'
BACKUP_MOUNT = "/backups"


def databases_to_back_up(resource: Resource) -> list[Resource]:
    """The databases (the resources of a kind that is backed up, see leases.kinds) whose data a
    reclamation of `resource` would destroy: itself, or what lives in it."""
    if LEASE_KINDS.get(resource.kind).backed_up:
        return [resource]
    if not kinds.get(resource.kind).in_namespace:
        return list(
            resource.children.filter(kind__in=backed_up_kinds())
            .exclude(state__in=Resource.TERMINAL)
            .select_related("parent")
        )
    return []


def backup_path(database: Resource, at: datetime) -> str:
    return f"{database.team.slug}/{database.namespace_name}/{database.name}-{at:%Y%m%dT%H%M%SZ}.dump"


def backup_location(path: str) -> str:
    return f"pvc://{settings.LEASEHOLD_BACKUP_PVC}/{path}"


def backup_manifests(*, database: Resource, password: str, at: datetime) -> list[dict]:
    """A Secret with the password and a Job running pg_dump, in the backup namespace (pure)."""
    path = f"{BACKUP_MOUNT}/{backup_path(database, at)}"
    return _job_manifests(
        database=database,
        password=password,
        name=f"backup-{str(database.pk)[:8]}-{at:%Y%m%d%H%M%S}",
        container="pg-dump",
        script=PG_DUMP_SCRIPT,
        backup_file=path,
    )


def restore_manifests(*, database: Resource, password: str, location: str, at: datetime) -> list[dict]:
    """A Secret with the password and a Job running pg_restore of `location` into `database` (pure)."""
    prefix = f"pvc://{settings.LEASEHOLD_BACKUP_PVC}/"
    if not location.startswith(prefix):
        raise ValueError(f"{location} is not in the backup volume {settings.LEASEHOLD_BACKUP_PVC}")
    path = f"{BACKUP_MOUNT}/{location[len(prefix) :]}"
    return _job_manifests(
        database=database,
        password=password,
        name=f"restore-{str(database.pk)[:8]}-{at:%Y%m%d%H%M%S}",
        container="pg-restore",
        script=PG_RESTORE_SCRIPT,
        backup_file=path,
    )


def _job_manifests(
    *, database: Resource, password: str, name: str, container: str, script: str, backup_file: str
) -> list[dict]:
    spec = database.spec
    provider = database.created_by_request.frozen.get("provider", "statefulset")
    conn = database_connection(database_spec_of(database.name, database.namespace_name, spec), provider)
    namespace = settings.LEASEHOLD_BACKUP_NAMESPACE
    labels = {"app.kubernetes.io/managed-by": "leasehold", LABEL_RESOURCE: str(database.pk)}
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "type": "Opaque",
        "stringData": {"PGPASSWORD": password},
    }
    env = [
        {"name": "PGHOST", "value": conn["host"]},
        {"name": "PGPORT", "value": str(conn["port"])},
        {"name": "PGUSER", "value": conn["user"]},
        {"name": "PGDATABASE", "value": conn["database"]},
        {"name": "PGPASSWORD", "valueFrom": {"secretKeyRef": {"name": name, "key": "PGPASSWORD"}}},
        {"name": "BACKUP_FILE", "value": backup_file},
    ]
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "backoffLimit": 2,
            "activeDeadlineSeconds": 3600,
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "restartPolicy": "Never",
                    "automountServiceAccountToken": False,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": 999,
                        "fsGroup": 999,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [
                        {
                            "name": container,
                            "image": f"{POSTGRES_IMAGE}:{spec['version']}",
                            "command": ["sh", "-c", script],
                            "env": env,
                            "volumeMounts": [{"name": "backups", "mountPath": BACKUP_MOUNT}],
                            "securityContext": {
                                "allowPrivilegeEscalation": False,
                                "capabilities": {"drop": ["ALL"]},
                            },
                        }
                    ],
                    "volumes": [
                        {"name": "backups", "persistentVolumeClaim": {"claimName": settings.LEASEHOLD_BACKUP_PVC}}
                    ],
                },
            },
        },
    }
    return [secret, job]


def database_password(database: Resource) -> str:
    password = stored_password(cluster.read(database_secret_ref(database.namespace_name, database.name)))
    if password is None:
        raise PermanentClusterError(f"The Secret of database {database.name} is gone: nothing to back up with.")
    return password


def job_outcome(job: dict | None) -> str:
    """`succeeded`, `failed` or `running` from a Job's status (a missing Job counts as failed)."""
    if job is None:
        return "failed"
    status = job.get("status") or {}
    for condition in status.get("conditions") or []:
        if condition.get("status") == "True" and condition.get("type") in ("Complete", "Failed"):
            return "succeeded" if condition["type"] == "Complete" else "failed"
    if (status.get("succeeded") or 0) >= 1:
        return "succeeded"
    backoff = ((job.get("spec") or {}).get("backoffLimit") or 0) + 1
    if (status.get("failed") or 0) >= backoff:
        return "failed"
    return "running"


def backup_storage_manifests() -> list[dict]:
    """The backup namespace (labelled so that team namespaces' network policy admits its Jobs) and the
    volume claim the Jobs write to, as deploy/base/backups.yaml makes them (pure). `make run` applies
    them to its local control plane (`manage.py ensure_backup_storage`); on a real cluster, deploy/ does."""
    namespace, pvc = settings.LEASEHOLD_BACKUP_NAMESPACE, settings.LEASEHOLD_BACKUP_PVC
    labels = {"app.kubernetes.io/name": "leasehold"}
    restricted = {f"pod-security.kubernetes.io/{mode}": "restricted" for mode in ("enforce", "audit", "warn")}
    return [
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": namespace, "labels": {**labels, "leasehold.io/backups": "true", **restricted}},
        },
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {
                "name": pvc,
                "namespace": namespace,
                "labels": {**labels, "app.kubernetes.io/component": "backups"},
            },
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "50Gi"}}},
        },
    ]


def backup_storage_problem() -> str:
    """Empty when the backup namespace and volume claim exist; otherwise what every backup Job of a pass
    would fail on, in the API server's words. Raises ClusterError when the cluster cannot be asked."""
    namespace, pvc = settings.LEASEHOLD_BACKUP_NAMESPACE, settings.LEASEHOLD_BACKUP_PVC
    if cluster.read(cluster.ObjectRef("v1", "Namespace", "", namespace)) is None:
        return f'namespaces "{namespace}" not found (LEASEHOLD_BACKUP_NAMESPACE)'
    if cluster.read(cluster.ObjectRef("v1", "PersistentVolumeClaim", namespace, pvc)) is None:
        return f'persistentvolumeclaims "{pvc}" not found in namespace {namespace} (LEASEHOLD_BACKUP_PVC)'
    return ""


def backup_storage_checked() -> str:
    """`backup_storage_problem()`, with a cluster that cannot be asked as the problem (the pass's dry run
    and the forecast report it rather than fail)."""
    try:
        return backup_storage_problem()
    except ClusterError as exc:
        return f"the backup storage cannot be checked: {exc}"
