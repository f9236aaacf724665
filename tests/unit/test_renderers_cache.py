"""The cache kind's renderer (pure): a Secret, a Service and a Redis StatefulSet; and its spec."""

from __future__ import annotations

import json
from dataclasses import replace

import kubernetes_validate
import pytest

from provisioning.kinds.cache import (
    REDIS_IMAGE,
    CacheSpec,
    cache_connection,
    cache_manifests,
    cache_secret_name,
)
from provisioning.renderers import SecretBinding, app_manifests
from requests_app.errors import ValidationFailed
from requests_app.kinds import get
from requests_app.kinds.cache import CACHE_PLANS, REDIS_VERSIONS, cache_spec, cache_usage
from requests_app.quantities import parse_quantity
from tests.unit.test_pod_security import restricted_violations
from tests.unit.test_renderers_app import APP
from tests.unit.test_renderers_database import (
    CONTRACT_ANNOTATIONS,
    CONTRACT_LABELS,
    CTX,
    KUBERNETES_VERSIONS,
    PASSWORD,
    validate_on_kubernetes_1_20,
)

CACHE = CacheSpec(name="sessions", namespace="atlas-checkout", version="7", plan="small", persistence=False)
PERSISTENT = replace(CACHE, persistence=True, plan="medium")


def render(cache: CacheSpec = CACHE) -> dict[str, dict]:
    return {m["kind"]: m for m in cache_manifests(cache=cache, password=PASSWORD, ctx=CTX)}


def container(cache: CacheSpec = CACHE) -> dict:
    return render(cache)["StatefulSet"]["spec"]["template"]["spec"]["containers"][0]


def redis_bytes(value: str) -> int:
    """Redis' own memory units: 1mb and 1gb are binary (1kb = 1024 bytes)."""
    units = {"kb": 1024, "mb": 1024**2, "gb": 1024**3}
    return int(value[:-2]) * units[value[-2:]]


@pytest.mark.parametrize("cache", [CACHE, PERSISTENT], ids=["in-memory", "persistent"])
def test_every_object_carries_the_contract_labels_and_annotations_and_is_valid(cache):
    manifests = cache_manifests(cache=cache, password=PASSWORD, ctx=CTX)
    assert [m["kind"] for m in manifests] == ["Secret", "Service", "StatefulSet"]
    for manifest in manifests:
        assert CONTRACT_LABELS.items() <= manifest["metadata"]["labels"].items()
        assert CONTRACT_ANNOTATIONS.items() <= manifest["metadata"]["annotations"].items()
        assert manifest["metadata"]["namespace"] == "atlas-checkout"
        validate_on_kubernetes_1_20(manifest)
        for version in KUBERNETES_VERSIONS:
            kubernetes_validate.validate(manifest, version, strict=True)


def test_the_pod_passes_the_restricted_level_and_gets_no_token():
    pod = render(PERSISTENT)["StatefulSet"]["spec"]["template"]["spec"]
    assert restricted_violations(pod) == []
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsUser"] == 999


def test_the_password_reaches_redis_through_a_mounted_config_never_the_command_line():
    secret = render()["Secret"]
    assert secret["stringData"]["redis.conf"] == f"requirepass {PASSWORD}\n"
    redis = container()
    pod = render()["StatefulSet"]["spec"]["template"]["spec"]
    # Nothing but the Secret holds it: not the args (`ps`), not a literal env value, not the probes.
    assert PASSWORD not in json.dumps(render()["StatefulSet"])
    assert redis["args"][:2] == ["redis-server", "/etc/redis/leasehold/redis.conf"]
    assert redis["env"] == [
        {"name": "REDISCLI_AUTH", "valueFrom": {"secretKeyRef": {"name": "sessions-credentials", "key": "password"}}}
    ]
    config = next(v for v in pod["volumes"] if v["name"] == "config")
    assert config["secret"] == {
        "secretName": "sessions-credentials",
        "items": [{"key": "redis.conf", "path": "redis.conf"}],
        "defaultMode": 0o440,
    }


def test_the_secret_holds_a_ready_redis_url():
    data = render()["Secret"]["stringData"]
    assert data["REDIS_URL"] == f"redis://:{PASSWORD}@sessions.atlas-checkout.svc:6379/0"
    assert (data["host"], data["port"], data["password"]) == ("sessions.atlas-checkout.svc", "6379", PASSWORD)
    assert cache_secret_name("sessions") == "sessions-credentials"


def test_without_persistence_redis_neither_saves_nor_appends_and_keeps_no_volume():
    args = container()["args"]
    assert args[args.index("--save") + 1] == "" and args[args.index("--appendonly") + 1] == "no"
    sts = render()["StatefulSet"]["spec"]
    assert "volumeClaimTemplates" not in sts
    assert {"name": "data", "emptyDir": {}} in sts["template"]["spec"]["volumes"]


def test_with_persistence_the_append_only_file_lives_on_a_volume_of_the_plans_size():
    args = container(PERSISTENT)["args"]
    assert args[args.index("--appendonly") + 1] == "yes"
    sts = render(PERSISTENT)["StatefulSet"]["spec"]
    claim = sts["volumeClaimTemplates"][0]
    assert claim["metadata"]["name"] == "data"
    assert claim["spec"]["resources"]["requests"]["storage"] == CACHE_PLANS["medium"].storage == "4Gi"
    assert "leasehold.io/resource" in claim["metadata"]["labels"]  # the reclaimer can find what it leaves
    assert not [v for v in sts["template"]["spec"]["volumes"] if v["name"] == "data"]


@pytest.mark.parametrize("plan", list(CACHE_PLANS))
def test_maxmemory_stays_below_the_container_limit_and_evicts(plan):
    redis = container(replace(CACHE, plan=plan))
    args = redis["args"]
    limit = parse_quantity(redis["resources"]["limits"]["memory"])
    maxmemory = redis_bytes(args[args.index("--maxmemory") + 1])
    assert maxmemory == limit * 3 / 4
    assert redis["resources"]["requests"]["memory"] == redis["resources"]["limits"]["memory"]
    assert args[args.index("--maxmemory-policy") + 1] == "allkeys-lru"


@pytest.mark.parametrize("version", list(REDIS_VERSIONS))
def test_each_version_runs_a_pinned_tag_of_the_official_image(version):
    image = container(replace(CACHE, version=version))["image"]
    repository, tag = image.rsplit(":", 1)
    assert repository == REDIS_IMAGE == "docker.io/library/redis"
    assert tag.startswith(version + ".") and len(tag.split(".")) == 3


def test_a_version_or_plan_the_renderer_does_not_know_is_refused():
    with pytest.raises(ValueError, match="Redis version"):
        cache_manifests(cache=replace(CACHE, version="5"), password=PASSWORD, ctx=CTX)
    with pytest.raises(ValueError, match="cache plan"):
        cache_manifests(cache=replace(CACHE, plan="huge"), password=PASSWORD, ctx=CTX)


def test_the_connection_names_host_port_and_secret_never_the_password():
    assert cache_connection(CACHE) == {
        "host": "sessions.atlas-checkout.svc",
        "port": 6379,
        "secret_name": "sessions-credentials",
    }


def test_an_app_bound_to_a_cache_reads_redis_url_from_its_secret():
    binding = get("cache").bindings[0]
    bound = replace(APP, bindings=(SecretBinding("sessions-credentials", binding.env, "cache"),))
    deployment = next(m for m in app_manifests(app=bound, ctx=CTX) if m["kind"] == "Deployment")
    env = {e["name"]: e for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["REDIS_URL"] == {
        "name": "REDIS_URL",
        "valueFrom": {"secretKeyRef": {"name": "sessions-credentials", "key": "REDIS_URL"}},
    }


def test_the_spec_gets_its_defaults_and_refuses_what_is_not_offered():
    assert cache_spec({"namespace": "checkout"}) == {
        "namespace": "checkout",
        "engine": "redis",
        "version": "7",
        "plan": "small",
        "persistence": False,
    }
    assert cache_spec({"namespace": "checkout", "version": 7})["version"] == "7"
    bad = {"namespace": "", "engine": "memcached", "version": "5", "plan": "huge", "persistence": "yes"}
    with pytest.raises(ValidationFailed) as refused:
        cache_spec(bad)
    assert set(refused.value.errors) == {
        "spec.namespace",
        "spec.engine",
        "spec.version",
        "spec.plan",
        "spec.persistence",
    }
    with pytest.raises(ValidationFailed, match="Unknown"):
        cache_spec({"namespace": "checkout", "maxmemory": "1gb"})


def test_a_cache_takes_its_limits_and_its_volume_only_with_persistence():
    small = cache_usage({"plan": "small", "persistence": False})
    assert (small.cpu, small.memory, small.storage) == (parse_quantity("500m"), parse_quantity("256Mi"), 0)
    assert cache_usage({"plan": "small", "persistence": True}).storage == parse_quantity("1Gi")
