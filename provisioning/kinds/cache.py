"""A cache renders as its Secret, a Service and a StatefulSet running the official `redis` image.

The password is generated at the first apply (a re-run keeps it: `password_secret`) and reaches Redis as
a config file mounted from the Secret (`requirepass`), never as a command-line argument that `ps` or the
pod's spec would show; the probes authenticate with `REDISCLI_AUTH` from the same Secret. The Secret also
holds a ready `REDIS_URL`, which a bound app reads through `secretKeyRef`. With persistence the data is
kept in an append-only file on a volume of the plan's size; without, Redis neither saves nor appends and
the pod's data directory is an emptyDir. The functions below are pure.
"""

from __future__ import annotations

from dataclasses import dataclass

from requests_app.kinds.cache import CACHE_PLANS, CACHE_PORT, REDIS_VERSIONS

from ..renderers import (
    CONTAINER_SECURITY,
    LABEL_INSTANCE,
    LABEL_NAME,
    ComputeResources,
    RenderContext,
    container_resources,
    pod_security_context,
    secret_env,
    stable_labels,
    workload_metadata,
)
from . import PROVISIONING_KINDS, namespace_of, with_generated_password

REDIS_IMAGE = "docker.io/library/redis"
REDIS_UID = 999  # the `redis` user of the official Debian-based image
DATA_MOUNT = "/data"
CONFIG_DIR = "/etc/redis/leasehold"
CONFIG_KEY = "redis.conf"
# A cache evicts the least recently used keys when full, instead of refusing writes.
EVICTION_POLICY = "allkeys-lru"


@dataclass(frozen=True)
class CacheSpec:
    name: str  # the resource name, e.g. "sessions"
    namespace: str  # e.g. "atlas-checkout"
    version: str  # a key of REDIS_VERSIONS
    plan: str  # a key of CACHE_PLANS
    persistence: bool


def cache_spec_of(name: str, namespace: str, spec: dict) -> CacheSpec:
    return CacheSpec(name, namespace, spec["version"], spec["plan"], bool(spec.get("persistence")))


def cache_secret_name(name: str) -> str:
    return f"{name}-credentials"


def cache_connection(cache: CacheSpec) -> dict:
    """How an app reaches the cache. Never the password: that (and a ready REDIS_URL) stays in the Secret."""
    return {
        "host": f"{cache.name}.{cache.namespace}.svc",
        "port": CACHE_PORT,
        "secret_name": cache_secret_name(cache.name),
    }


def _labels(cache: CacheSpec) -> dict[str, str]:
    return {LABEL_NAME: "redis", LABEL_INSTANCE: cache.name}


def _check(cache: CacheSpec) -> None:
    if cache.version not in REDIS_VERSIONS:
        raise ValueError(f"unsupported Redis version {cache.version!r}; expected one of {', '.join(REDIS_VERSIONS)}")
    if cache.plan not in CACHE_PLANS:
        raise ValueError(f"unknown cache plan {cache.plan!r}; expected one of {', '.join(CACHE_PLANS)}")


def _secret(cache: CacheSpec, password: str, ctx: RenderContext) -> dict:
    host = cache_connection(cache)["host"]
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": workload_metadata(ctx, cache_secret_name(cache.name), cache.namespace, _labels(cache)),
        "type": "Opaque",
        "stringData": {
            "password": password,
            "host": host,
            "port": str(CACHE_PORT),
            # The generated password is URL-safe (letters, digits, '-' and '_'): no escaping needed.
            "REDIS_URL": f"redis://:{password}@{host}:{CACHE_PORT}/0",
            CONFIG_KEY: f"requirepass {password}\n",
        },
    }


def _server_args(cache: CacheSpec) -> list[str]:
    plan = CACHE_PLANS[cache.plan]
    args = ["redis-server", f"{CONFIG_DIR}/{CONFIG_KEY}", "--dir", DATA_MOUNT, "--port", str(CACHE_PORT)]
    args += ["--maxmemory", plan.maxmemory, "--maxmemory-policy", EVICTION_POLICY]
    if cache.persistence:
        return [*args, "--save", "", "--appendonly", "yes", "--appendfsync", "everysec"]
    return [*args, "--save", "", "--appendonly", "no"]


def _ping_probe(**timing: int) -> dict:
    # redis-cli reads the password from REDISCLI_AUTH (set from the Secret): nothing on its command line.
    return {"exec": {"command": ["sh", "-c", 'test "$(redis-cli -h 127.0.0.1 ping)" = PONG']}, **timing}


def _statefulset(cache: CacheSpec, ctx: RenderContext) -> dict:
    plan = CACHE_PLANS[cache.plan]
    labels = _labels(cache)
    secret = cache_secret_name(cache.name)
    container = {
        "name": "redis",
        "image": f"{REDIS_IMAGE}:{REDIS_VERSIONS[cache.version]}",
        "imagePullPolicy": "IfNotPresent",
        "args": _server_args(cache),
        "env": [secret_env("REDISCLI_AUTH", secret, "password")],
        "ports": [{"name": "redis", "containerPort": CACHE_PORT, "protocol": "TCP"}],
        "readinessProbe": _ping_probe(periodSeconds=10, timeoutSeconds=3, failureThreshold=3),
        "livenessProbe": _ping_probe(initialDelaySeconds=15, periodSeconds=20, timeoutSeconds=5, failureThreshold=6),
        "resources": container_resources(
            ComputeResources(plan.cpu_request, plan.cpu_limit, plan.memory_request, plan.memory_limit)
        ),
        "securityContext": dict(CONTAINER_SECURITY),
        "volumeMounts": [
            {"name": "data", "mountPath": DATA_MOUNT},
            {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
        ],
    }
    volumes: list[dict] = [
        # Only the config key, readable by the redis group (fsGroup), not by others.
        {
            "name": "config",
            "secret": {"secretName": secret, "items": [{"key": CONFIG_KEY, "path": CONFIG_KEY}], "defaultMode": 0o440},
        }
    ]
    spec: dict = {
        "replicas": 1,
        "serviceName": cache.name,
        "selector": {"matchLabels": dict(labels)},
        "template": {
            "metadata": {"labels": {**stable_labels(ctx), **labels}},
            "spec": {
                "automountServiceAccountToken": False,
                "terminationGracePeriodSeconds": 30,
                "securityContext": pod_security_context(REDIS_UID),
                "containers": [container],
                "volumes": volumes,
            },
        },
    }
    if cache.persistence:
        spec["volumeClaimTemplates"] = [
            {
                "metadata": {"name": "data", "labels": {**stable_labels(ctx), **labels}},
                "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": plan.storage}}},
            }
        ]
    else:
        volumes.append({"name": "data", "emptyDir": {}})
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": workload_metadata(ctx, cache.name, cache.namespace, labels),
        "spec": spec,
    }


def cache_manifests(*, cache: CacheSpec, password: str, ctx: RenderContext) -> list[dict]:
    """The Secret, the Service `<name>` and the StatefulSet `<name>`, in apply order."""
    _check(cache)
    labels = _labels(cache)
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": workload_metadata(ctx, cache.name, cache.namespace, labels),
        "spec": {
            "type": "ClusterIP",
            "selector": dict(labels),
            "ports": [{"name": "redis", "port": CACHE_PORT, "targetPort": CACHE_PORT, "protocol": "TCP"}],
        },
    }
    return [_secret(cache, password, ctx), service, _statefulset(cache, ctx)]


def render_cache(request, ctx: RenderContext, password: str) -> list[dict]:
    return cache_manifests(
        cache=cache_spec_of(request.name, namespace_of(request), request.spec), password=password, ctx=ctx
    )


def cache_connection_of(resource) -> dict | None:
    if resource.parent is None:
        return None
    return cache_connection(cache_spec_of(resource.name, resource.parent.namespace_name, resource.spec))


PROVISIONING_KINDS.register(
    "cache",
    with_generated_password(
        "cache", render=render_cache, connection=cache_connection_of, secret_name=cache_secret_name
    ),
)
