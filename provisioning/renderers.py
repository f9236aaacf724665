"""Pure functions: a request's spec in, the Kubernetes manifests (dicts) out.

Only APIs that are valid on Kubernetes 1.20 and on current clusters are used (core v1, apps/v1, rbac v1,
networking.k8s.io/v1; and the CloudNativePG `Cluster` when that provider is chosen). Every object carries
the labels and annotations of CONTRACT.md §5. No I/O, no ORM: the same input renders the same bytes.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from requests_app.kinds import database as database_kind
from requests_app.models import Kind
from requests_app.quantities import parse_quantity

# ComputeResources, DATABASE_PLANS and POSTGRES_VERSIONS are defined once, with the request specs that
# validate against them, and re-exported here: the renderers' interface names them too.
from requests_app.specs import DATABASE_PLANS, POSTGRES_VERSIONS, ComputeResources, Quota, namespace_quota

MANAGED_BY = "leasehold"
LABEL_RESOURCE = "leasehold.io/resource"
LABEL_TEAM = "leasehold.io/team"
LABEL_ENVIRONMENT = "leasehold.io/environment"
ANNOTATION_REQUEST = "leasehold.io/request"
ANNOTATION_OWNER = "leasehold.io/owner"
ANNOTATION_LEASE_EXPIRES = "leasehold.io/lease-expires"
OBJECT_NAME = "leasehold"
BACKUPS_LABEL = "leasehold.io/backups"
# Pod Security Admission: the level a namespace enforces, audits and warns about, each with its version.
POD_SECURITY_PREFIX = "pod-security.kubernetes.io/"
POD_SECURITY_MODES = ("enforce", "audit", "warn")
POD_SECURITY_LEVELS = ("privileged", "baseline", "restricted")

# Container defaults inside a namespace, so that pods without resources still pass the quota.
DEFAULT_REQUEST = {"cpu": "100m", "memory": "128Mi"}
DEFAULT_LIMIT = {"cpu": "500m", "memory": "512Mi"}


@dataclass(frozen=True)
class RenderContext:
    """Who and what the objects belong to: the values of the contract's labels and annotations."""

    resource_id: str
    request_id: str
    team: str
    team_group: str
    environment: str
    owner: str
    lease_expires: datetime


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def object_metadata(ctx: RenderContext, name: str, namespace: str | None = None) -> dict:
    meta: dict = {
        "name": name,
        "labels": {
            "app.kubernetes.io/managed-by": MANAGED_BY,
            LABEL_RESOURCE: ctx.resource_id,
            LABEL_TEAM: ctx.team,
            LABEL_ENVIRONMENT: ctx.environment,
        },
        "annotations": {
            ANNOTATION_REQUEST: ctx.request_id,
            ANNOTATION_OWNER: ctx.owner,
            ANNOTATION_LEASE_EXPIRES: rfc3339(ctx.lease_expires),
        },
    }
    if namespace is not None:
        meta["namespace"] = namespace
    return meta


def _at_most(value: str, ceiling: str) -> str:
    return value if parse_quantity(value) <= parse_quantity(ceiling) else ceiling


def _smaller(a: str, b: str) -> str:
    qa: Decimal = parse_quantity(a)
    return a if qa <= parse_quantity(b) else b


def pod_security_labels(level: str, version: str = "latest") -> dict[str, str]:
    """The Pod Security Admission labels of a namespace: `level` enforced, audited and warned about."""
    if level not in POD_SECURITY_LEVELS:
        raise ValueError(f"unknown Pod Security level {level!r}; expected one of {', '.join(POD_SECURITY_LEVELS)}")
    labels = {}
    for mode in POD_SECURITY_MODES:
        labels[f"{POD_SECURITY_PREFIX}{mode}"] = level
        labels[f"{POD_SECURITY_PREFIX}{mode}-version"] = version
    return labels


def pod_security_labels_of(manifest: dict | None) -> dict[str, str]:
    """The Pod Security Admission labels an object (a Namespace) carries."""
    labels = ((manifest or {}).get("metadata") or {}).get("labels") or {}
    return {k: v for k, v in labels.items() if k.startswith(POD_SECURITY_PREFIX)}


def namespace_manifests(
    *,
    namespace: str,
    quota: Quota,
    ctx: RenderContext,
    pod_security: str = "restricted",
    pod_security_version: str = "latest",
) -> list[dict]:
    """Namespace, ResourceQuota, LimitRange, RoleBinding and NetworkPolicy for one team namespace.

    The Namespace carries the Pod Security Admission labels of `pod_security`: the team gets `edit` in
    it, and these labels (which `edit` cannot change) decide what pods it may run.
    """
    limit = {k: _at_most(v, getattr(quota, k)) for k, v in DEFAULT_LIMIT.items()}
    request = {k: _smaller(v, limit[k]) for k, v in DEFAULT_REQUEST.items()}
    ns_meta = object_metadata(ctx, namespace)
    ns_meta["labels"] = {**ns_meta["labels"], **pod_security_labels(pod_security, pod_security_version)}
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": ns_meta},
        {
            "apiVersion": "v1",
            "kind": "ResourceQuota",
            "metadata": object_metadata(ctx, OBJECT_NAME, namespace),
            "spec": {
                "hard": {
                    "requests.cpu": quota.cpu,
                    "limits.cpu": quota.cpu,
                    "requests.memory": quota.memory,
                    "limits.memory": quota.memory,
                    "requests.storage": quota.storage,
                }
            },
        },
        {
            "apiVersion": "v1",
            "kind": "LimitRange",
            "metadata": object_metadata(ctx, OBJECT_NAME, namespace),
            "spec": {"limits": [{"type": "Container", "default": limit, "defaultRequest": request}]},
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": object_metadata(ctx, "leasehold-team", namespace),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": ctx.team_group}],
        },
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": object_metadata(ctx, "leasehold-default", namespace),
            "spec": {
                "podSelector": {},
                "policyTypes": ["Ingress"],
                # Only pods of the same namespace may connect, and the backup Jobs of Leasehold (in
                # the namespace labelled `leasehold.io/backups: "true"`); everything else is denied.
                "ingress": [
                    {"from": [{"podSelector": {}}, {"namespaceSelector": {"matchLabels": {BACKUPS_LABEL: "true"}}}]}
                ],
            },
        },
    ]


def manifests_for(
    *,
    kind: str,
    team: str,
    name: str,
    spec: dict,
    ctx: RenderContext,
    pod_security: str = "restricted",
    pod_security_version: str = "latest",
) -> list[dict]:
    """The manifests a create request of `kind` applies, in apply order."""
    if kind == Kind.NAMESPACE:
        return namespace_manifests(
            namespace=f"{team}-{name}",
            quota=namespace_quota(spec),
            ctx=ctx,
            pod_security=pod_security,
            pod_security_version=pod_security_version,
        )
    raise ValueError(f"no renderer for kind {kind!r}")


# --- shared helpers for workloads -------------------------------------------------------------------------

LABEL_NAME = "app.kubernetes.io/name"
LABEL_INSTANCE = "app.kubernetes.io/instance"
ANNOTATION_CONFIG_HASH = "leasehold.io/config-hash"

# Labels that never change over a resource's life. Only these go on pod templates (a changing annotation
# there, such as the lease expiry, would restart every pod at each extension) and on the StatefulSet's
# volumeClaimTemplates (immutable once created). They also let the reclaimer find the PVCs a StatefulSet
# leaves behind.
_STABLE_CONTRACT_LABELS = ("app.kubernetes.io/managed-by", LABEL_RESOURCE, LABEL_TEAM, LABEL_ENVIRONMENT)


def _stable_labels(ctx: RenderContext) -> dict[str, str]:
    labels = object_metadata(ctx, "unused")["labels"]
    return {k: labels[k] for k in _STABLE_CONTRACT_LABELS}


def _metadata(ctx: RenderContext, name: str, namespace: str, extra_labels: dict[str, str]) -> dict:
    meta = object_metadata(ctx, name, namespace)
    meta["labels"] = {**meta["labels"], **extra_labels}
    return meta


def _resources(res: ComputeResources) -> dict:
    return {
        "requests": {"cpu": res.cpu_request, "memory": res.memory_request},
        "limits": {"cpu": res.cpu_limit, "memory": res.memory_limit},
    }


def _secret_env(name: str, secret_name: str, key: str) -> dict:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret_name, "key": key}}}


def _canonical_json(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


# Every pod Leasehold renders passes the "restricted" Pod Security level, whatever level its namespace
# enforces: non-root, the runtime's seccomp profile, no privilege escalation, no capabilities. None of
# them talks to the Kubernetes API, so none gets a service account token.
_SECCOMP_RUNTIME_DEFAULT = {"type": "RuntimeDefault"}
_CONTAINER_SECURITY = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "readOnlyRootFilesystem": False,
}
POD_TEMPLATE_KINDS = ("Deployment", "StatefulSet", "Job")


def pod_security_context(uid: int) -> dict:
    """A pod that runs as the image's own user `uid` (its files and volumes owned by that group), non-root,
    with the runtime's seccomp profile."""
    return {
        "runAsUser": uid,
        "runAsGroup": uid,
        "fsGroup": uid,
        "runAsNonRoot": True,
        "seccompProfile": dict(_SECCOMP_RUNTIME_DEFAULT),
    }


# What a kind's own renderer (provisioning/kinds/<kind>.py) builds its objects with, so that every kind's
# objects carry the same labels, annotations, limits and container protections.
workload_metadata = _metadata
stable_labels = _stable_labels
container_resources = _resources
secret_env = _secret_env
CONTAINER_SECURITY = _CONTAINER_SECURITY


def pod_templates_hardened(manifests: list[dict]) -> list[dict]:
    """`manifests` with the pod settings above enforced on every pod template (in place, and returned).

    For objects kept from an earlier render (an app's release that a rollback applies again): what ran
    then may predate a setting, and a rollback must not take a pod's protection away.
    """
    for manifest in manifests:
        if manifest.get("kind") not in POD_TEMPLATE_KINDS:
            continue
        pod = manifest.get("spec", {}).get("template", {}).get("spec")
        if not isinstance(pod, dict):
            continue
        pod["automountServiceAccountToken"] = False
        security = pod.setdefault("securityContext", {})
        security["runAsNonRoot"] = True
        security.setdefault("seccompProfile", dict(_SECCOMP_RUNTIME_DEFAULT))
        for container in [*pod.get("initContainers", []), *pod.get("containers", [])]:
            container_security = container.setdefault("securityContext", {})
            container_security["allowPrivilegeEscalation"] = False
            container_security.setdefault("capabilities", {})["drop"] = ["ALL"]
    return manifests


# --- databases ----------------------------------------------------------------------------------------------

POSTGRES_IMAGE = "docker.io/library/postgres"
CNPG_IMAGE = "ghcr.io/cloudnative-pg/postgresql"
POSTGRES_PORT = 5432
POSTGRES_UID = 999  # the `postgres` user of the official Debian-based image
POSTGRES_DATA_MOUNT = "/var/lib/postgresql/data"
# A directory below the mount point: a fresh volume's root may hold `lost+found`, which initdb refuses.
POSTGRES_PGDATA = f"{POSTGRES_DATA_MOUNT}/pgdata"
DATABASE_PROVIDERS = ("statefulset", "cloudnativepg")


@dataclass(frozen=True)
class DatabaseSpec:
    name: str  # DNS label, the resource name, e.g. "orders"
    namespace: str  # e.g. "atlas-checkout"
    version: str  # major, one of POSTGRES_VERSIONS
    storage: str  # quantity, e.g. "10Gi"
    plan: str  # key of DATABASE_PLANS


def database_secret_name(name: str) -> str:
    return f"{name}-credentials"


def _database_service(db: DatabaseSpec, provider: str) -> str:
    if provider == "statefulset":
        return db.name
    if provider == "cloudnativepg":
        return f"{db.name}-rw"  # CloudNativePG's read-write Service, always pointing at the primary
    raise ValueError(f"unknown database provider {provider!r}; expected one of {', '.join(DATABASE_PROVIDERS)}")


def database_connection(db: DatabaseSpec, provider: str) -> dict:
    """How an app reaches the database. Never the password: that stays in the Secret."""
    return {
        "host": f"{_database_service(db, provider)}.{db.namespace}.svc",
        "port": POSTGRES_PORT,
        "database": db.name,
        "user": db.name,
        "secret_name": database_secret_name(db.name),
    }


def _check_database(db: DatabaseSpec, provider: str) -> ComputeResources:
    _database_service(db, provider)  # rejects an unknown provider
    if db.version not in POSTGRES_VERSIONS:
        raise ValueError(f"unsupported PostgreSQL version {db.version!r}; expected one of {POSTGRES_VERSIONS}")
    if db.plan not in DATABASE_PLANS:
        raise ValueError(f"unknown database plan {db.plan!r}; expected one of {', '.join(DATABASE_PLANS)}")
    try:
        parse_quantity(db.storage)
    except ValueError as e:
        raise ValueError(f"invalid storage quantity {db.storage!r}") from e
    return DATABASE_PLANS[db.plan]


def _database_labels(db: DatabaseSpec) -> dict[str, str]:
    # `name` is the software, `instance` the database: an app of another name in the same namespace never
    # selects these pods (app and database names share the Service namespace, so they cannot be equal).
    return {LABEL_NAME: "postgresql", LABEL_INSTANCE: db.name}


def _database_secret(db: DatabaseSpec, password: str, ctx: RenderContext, provider: str) -> dict:
    conn = database_connection(db, provider)
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": _metadata(ctx, database_secret_name(db.name), db.namespace, _database_labels(db)),
        # basic-auth with the key names of CloudNativePG's app secret, so apps bind the same way to either.
        "type": "kubernetes.io/basic-auth",
        "stringData": {
            "username": conn["user"],
            "password": password,
            "dbname": conn["database"],
            "host": conn["host"],
            "port": str(conn["port"]),
        },
    }


def _pg_isready_probe(**timing: int) -> dict:
    # Exec probes are not run through a shell and Kubernetes does not expand $(VAR) in them, so a shell reads
    # the user and database from the container's environment (which the probe process inherits).
    command = 'exec pg_isready -h 127.0.0.1 -p 5432 -U "$POSTGRES_USER" -d "$POSTGRES_DB"'
    return {"exec": {"command": ["sh", "-c", command]}, **timing}


def _statefulset_manifests(db: DatabaseSpec, ctx: RenderContext, plan: ComputeResources) -> list[dict]:
    labels = _database_labels(db)
    secret = database_secret_name(db.name)
    container = {
        "name": "postgres",
        "image": f"{POSTGRES_IMAGE}:{db.version}",
        "imagePullPolicy": "IfNotPresent",
        "env": [
            _secret_env("POSTGRES_USER", secret, "username"),
            _secret_env("POSTGRES_PASSWORD", secret, "password"),
            _secret_env("POSTGRES_DB", secret, "dbname"),
            {"name": "PGDATA", "value": POSTGRES_PGDATA},
        ],
        "ports": [{"name": "postgres", "containerPort": POSTGRES_PORT, "protocol": "TCP"}],
        # initdb on a first start can take a while: the startup probe holds off the others until it is done.
        "startupProbe": _pg_isready_probe(periodSeconds=5, timeoutSeconds=5, failureThreshold=60),
        "readinessProbe": _pg_isready_probe(periodSeconds=10, timeoutSeconds=5, failureThreshold=3),
        "livenessProbe": _pg_isready_probe(periodSeconds=20, timeoutSeconds=5, failureThreshold=6),
        "resources": _resources(plan),
        "securityContext": dict(_CONTAINER_SECURITY),
        "volumeMounts": [{"name": "data", "mountPath": POSTGRES_DATA_MOUNT}],
    }
    return [
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": _metadata(ctx, db.name, db.namespace, labels),
            "spec": {
                "type": "ClusterIP",
                "selector": dict(labels),
                "ports": [{"name": "postgres", "port": POSTGRES_PORT, "targetPort": POSTGRES_PORT, "protocol": "TCP"}],
            },
        },
        {
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": _metadata(ctx, db.name, db.namespace, labels),
            "spec": {
                "replicas": 1,
                "serviceName": db.name,
                "selector": {"matchLabels": dict(labels)},
                "template": {
                    "metadata": {"labels": {**_stable_labels(ctx), **labels}},
                    "spec": {
                        "automountServiceAccountToken": False,
                        "terminationGracePeriodSeconds": 30,
                        "securityContext": pod_security_context(POSTGRES_UID),
                        "containers": [container],
                    },
                },
                "volumeClaimTemplates": [
                    {
                        "metadata": {"name": "data", "labels": {**_stable_labels(ctx), **labels}},
                        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": db.storage}}},
                    }
                ],
            },
        },
    ]


def _cnpg_manifests(db: DatabaseSpec, ctx: RenderContext, plan: ComputeResources) -> list[dict]:
    return [
        {
            "apiVersion": "postgresql.cnpg.io/v1",
            "kind": "Cluster",
            "metadata": _metadata(ctx, db.name, db.namespace, _database_labels(db)),
            "spec": {
                "instances": 1,
                "imageName": f"{CNPG_IMAGE}:{db.version}",
                "storage": {"size": db.storage},
                "resources": _resources(plan),
                "bootstrap": {
                    "initdb": {
                        "database": db.name,
                        "owner": db.name,
                        "secret": {"name": database_secret_name(db.name)},
                    }
                },
            },
        }
    ]


def database_manifests(
    *, db: DatabaseSpec, password: str, ctx: RenderContext, provider: str = "statefulset"
) -> list[dict]:
    """The Secret `<name>-credentials` first, then the database itself: a StatefulSet with its Service on
    any cluster, or a CloudNativePG `Cluster` where that operator runs. The password is in the Secret only."""
    plan = _check_database(db, provider)
    secret = _database_secret(db, password, ctx, provider)
    if provider == "cloudnativepg":
        return [secret, *_cnpg_manifests(db, ctx, plan)]
    return [secret, *_statefulset_manifests(db, ctx, plan)]


# --- apps ---------------------------------------------------------------------------------------------------

APP_SERVICE_PORT = 80

# The variables libpq (and most PostgreSQL clients) read, each from a key of the bound database's Secret.
DATABASE_ENV = dict(database_kind.DATABASE_ENV)


@dataclass(frozen=True)
class AppTemplateSpec:
    slug: str
    image_repository: str
    container_port: int
    health_path: str
    default_env: dict[str, str]
    resources: ComputeResources
    accepts_database: bool


@dataclass(frozen=True)
class DatabaseBinding:
    secret_name: str  # the bound database's Secret


@dataclass(frozen=True)
class SecretBinding:
    """What an app binds to (a database, a cache): each variable of `env` read from a key of its Secret."""

    secret_name: str
    env: tuple[tuple[str, str], ...]  # (variable, Secret key)
    what: str = ""  # "database", "cache": for messages
    # A template field that must be true to bind this ("accepts_database"); empty: any template may.
    template_flag: str = ""


@dataclass(frozen=True)
class AppSpec:
    name: str
    namespace: str
    template: AppTemplateSpec
    image_tag: str
    replicas: int
    env: dict[str, str]  # overrides on top of template.default_env
    host: str | None = None  # Ingress host when given
    database: DatabaseBinding | None = None
    ingress_class: str | None = None
    bindings: tuple[SecretBinding, ...] = ()  # see requests_app.kinds: Binding


def _app_env(app: AppSpec) -> list[dict]:
    literal = {**app.template.default_env, **app.env}
    entries = {name: {"name": name, "value": str(value)} for name, value in literal.items()}
    if app.database is not None:
        # The binding wins over a template default or a user value of the same name: a literal PGPASSWORD
        # (or a PGHOST pointing elsewhere) would silently detach the app from the database it was bound to.
        for name, key in DATABASE_ENV.items():
            entries[name] = _secret_env(name, app.database.secret_name, key)
    for binding in app.bindings:
        for name, key in binding.env:
            entries[name] = _secret_env(name, binding.secret_name, key)
    return [entries[name] for name in sorted(entries)]


def _app_container(app: AppSpec) -> dict:
    template = app.template
    http_get = {"path": template.health_path, "port": "http", "scheme": "HTTP"}
    return {
        "name": "app",
        "image": f"{template.image_repository}:{app.image_tag}",
        "imagePullPolicy": "IfNotPresent",
        "ports": [{"name": "http", "containerPort": template.container_port, "protocol": "TCP"}],
        "env": _app_env(app),
        "readinessProbe": {
            "httpGet": dict(http_get),
            "initialDelaySeconds": 5,
            "periodSeconds": 10,
            "timeoutSeconds": 3,
            "failureThreshold": 3,
        },
        "livenessProbe": {
            "httpGet": dict(http_get),
            "initialDelaySeconds": 30,
            "periodSeconds": 20,
            "timeoutSeconds": 3,
            "failureThreshold": 3,
        },
        "resources": _resources(template.resources),
        "securityContext": dict(_CONTAINER_SECURITY),
    }


def config_hash(container: dict) -> str:
    """sha256 of a container spec in canonical JSON: it changes exactly when the rendered container does."""
    return hashlib.sha256(_canonical_json(container).encode()).hexdigest()


def app_manifests(*, app: AppSpec, ctx: RenderContext) -> list[dict]:
    """Deployment and Service `<name>`, and an Ingress `<name>` when the app has a host."""
    if app.database is not None and not app.template.accepts_database:
        raise ValueError(f"app template {app.template.slug!r} does not accept a database")
    for binding in app.bindings:
        if binding.template_flag and not getattr(app.template, binding.template_flag):
            raise ValueError(f"app template {app.template.slug!r} does not accept a {binding.what}")
    if app.replicas < 0:
        raise ValueError("replicas must not be negative")
    labels = {LABEL_NAME: app.name, LABEL_INSTANCE: app.name}
    container = _app_container(app)
    manifests = [
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": _metadata(ctx, app.name, app.namespace, labels),
            "spec": {
                "replicas": app.replicas,
                "selector": {"matchLabels": dict(labels)},
                "template": {
                    "metadata": {
                        "labels": {**_stable_labels(ctx), **labels},
                        "annotations": {ANNOTATION_CONFIG_HASH: config_hash(container)},
                    },
                    "spec": {
                        "automountServiceAccountToken": False,
                        "securityContext": {
                            "runAsNonRoot": True,
                            "seccompProfile": {"type": "RuntimeDefault"},
                        },
                        "containers": [container],
                    },
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": _metadata(ctx, app.name, app.namespace, labels),
            "spec": {
                "type": "ClusterIP",
                "selector": dict(labels),
                "ports": [{"name": "http", "port": APP_SERVICE_PORT, "targetPort": "http", "protocol": "TCP"}],
            },
        },
    ]
    if app.host:
        spec: dict = {}
        if app.ingress_class:
            spec["ingressClassName"] = app.ingress_class
        spec["rules"] = [
            {
                "host": app.host,
                "http": {
                    "paths": [
                        {
                            "path": "/",
                            "pathType": "Prefix",
                            "backend": {"service": {"name": app.name, "port": {"number": APP_SERVICE_PORT}}},
                        }
                    ]
                },
            }
        ]
        manifests.append(
            {
                "apiVersion": "networking.k8s.io/v1",
                "kind": "Ingress",
                "metadata": _metadata(ctx, app.name, app.namespace, labels),
                "spec": spec,
            }
        )
    return manifests
