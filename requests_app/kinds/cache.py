"""The cache kind: a Redis cache in a namespace (CONTRACT.md §6); apps bind to it (`spec.cache`) and read
a ready `REDIS_URL` from its Secret. Nothing is backed up: a cache holds nothing that cannot be rebuilt."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django import forms

from .. import specs
from ..errors import ValidationFailed
from ..forms import WorkloadForm
from . import register
from .base import Binding, Fact, ResourceKind, unknown_fields


@dataclass(frozen=True)
class CachePlan:
    """Container requests and limits, what Redis may hold (`maxmemory`, in Redis units: 1mb = 1 MiB) and
    the volume that keeps it when persistence is on. Memory is requested as much as it is limited (a
    cache fills up to its maxmemory; it is not overcommitted), and maxmemory is 75% of the limit: the rest
    is Redis' own overhead, fragmentation and the fork of an append-only-file rewrite."""

    cpu_request: str
    cpu_limit: str
    memory_request: str
    memory_limit: str
    maxmemory: str
    storage: str


CACHE_PLANS: dict[str, CachePlan] = {
    "small": CachePlan("100m", "500m", "256Mi", "256Mi", "192mb", "1Gi"),
    "medium": CachePlan("250m", "1", "1Gi", "1Gi", "768mb", "4Gi"),
    "large": CachePlan("500m", "2", "4Gi", "4Gi", "3gb", "16Gi"),
}
CACHE_ENGINES = ("redis",)
# The version asked for -> the image tag applied (pinned: a re-apply never changes what runs). 7 is 7.2,
# the last 7.x under the BSD licence (7.4 and later are RSALv2/SSPL); 6.2 for clients that need it.
REDIS_VERSIONS: dict[str, str] = {"7": "7.2.7", "6.2": "6.2.17"}
CACHE_DEFAULTS: dict[str, Any] = {"engine": "redis", "version": "7", "plan": "small", "persistence": False}
CACHE_PORT = 6379


def cache_spec(spec: dict) -> dict:
    """Validate a cache spec's shape and fill in the defaults (the namespace is checked by the service)."""
    if not isinstance(spec, dict):
        raise ValidationFailed({"spec": ["Must be an object."]})
    unknown_fields(spec, {"namespace", "engine", "version", "plan", "persistence"})
    out = {**CACHE_DEFAULTS, **spec}
    errors: dict[str, list[str]] = {}
    if not isinstance(out.get("namespace"), str) or not out["namespace"]:
        errors["spec.namespace"] = ["Name the namespace (its resource id or its name) the cache goes into."]
    if not specs.one_of(out["engine"], CACHE_ENGINES):
        errors["spec.engine"] = [f"Must be one of: {', '.join(CACHE_ENGINES)}."]
    if isinstance(out["version"], int) and not isinstance(out["version"], bool):
        out["version"] = str(out["version"])  # 7 and "7" are the same version
    if not specs.one_of(out["version"], REDIS_VERSIONS):
        errors["spec.version"] = [f"Must be one of: {', '.join(REDIS_VERSIONS)}."]
    if not specs.one_of(out["plan"], CACHE_PLANS):
        errors["spec.plan"] = [f"Must be one of: {', '.join(CACHE_PLANS)}."]
    if not isinstance(out["persistence"], bool):
        errors["spec.persistence"] = ["Must be true or false."]
    if errors:
        raise ValidationFailed(errors)
    return out


def cache_usage(spec: dict) -> specs.Usage:
    plan = CACHE_PLANS[spec["plan"]]
    storage = specs.parse_quantity(plan.storage) if spec.get("persistence") else Decimal(0)
    return specs.Usage(specs.parse_quantity(plan.cpu_limit), specs.parse_quantity(plan.memory_limit), storage)


class CacheRequestForm(WorkloadForm):
    kind = "cache"
    version = forms.ChoiceField(choices=[(v, f"Redis {v} ({tag})") for v, tag in REDIS_VERSIONS.items()], initial="7")
    plan = forms.ChoiceField(
        choices=[(k, f"{k} — {p.memory_limit} memory, holds {p.maxmemory}") for k, p in CACHE_PLANS.items()],
        initial="small",
    )
    persistence = forms.BooleanField(
        required=False, help_text="Keep the data on a volume (the plan's storage) across restarts."
    )
    field_order = ["namespace", "name", "environment", "version", "plan", "persistence", "lease_days", "justification"]

    def spec(self) -> dict[str, Any]:
        data = self.cleaned_data
        return {
            "namespace": data["namespace"],
            "engine": "redis",
            "version": data["version"],
            "plan": data["plan"],
            "persistence": bool(data["persistence"]),
        }


class CacheKind(ResourceKind):
    name = "cache"
    order = 40
    description = "A Redis cache in one of your namespaces; apps bind to it and read REDIS_URL from its Secret."
    backup_note = "not backed up: a cache"
    plans = CACHE_PLANS
    bindings = (
        Binding(
            source_kind="app",
            spec_key="cache",
            target_kind="cache",
            env=(("REDIS_URL", "REDIS_URL"),),
            help_text="Injects REDIS_URL (with the password) from its Secret.",
        ),
    )

    def validate_spec(self, spec: dict, *, ingress_domains: Sequence[str], service_hosts: Collection[str]) -> dict:
        return cache_spec(spec)

    def schema(self) -> dict:
        return {
            "type": "object",
            "required": ["namespace"],
            "properties": {
                "namespace": specs.NAMESPACE_REF_SCHEMA,
                "engine": {"enum": list(CACHE_ENGINES), "default": CACHE_DEFAULTS["engine"]},
                "version": {"enum": list(REDIS_VERSIONS), "default": CACHE_DEFAULTS["version"]},
                "plan": {"enum": list(CACHE_PLANS), "default": CACHE_DEFAULTS["plan"]},
                "persistence": {
                    "type": "boolean",
                    "default": False,
                    "description": "Keep the data on a volume of the plan's storage (append-only file); "
                    "false: in memory only, lost at a restart",
                },
            },
            "additionalProperties": False,
        }

    def catalog_extras(self) -> dict:
        return {
            "engines": list(CACHE_ENGINES),
            "engine_name": "Redis",
            "versions": list(REDIS_VERSIONS),
            "images": {version: f"docker.io/library/redis:{tag}" for version, tag in REDIS_VERSIONS.items()},
        }

    def usage(self, spec, *, frozen=None, context=None) -> specs.Usage:
        return cache_usage(spec)

    def policy_quantities(self, spec: dict) -> dict:
        usage = cache_usage(spec)
        return {"cpu": usage.cpu, "memory": usage.memory, "storage": usage.storage}

    def size(self, spec: dict) -> str:
        return f"{spec.get('plan', '?')}, {'persistent' if spec.get('persistence') else 'in memory'}"

    def summary_facts(self, request, spec: dict, lookups) -> list[Fact]:
        from ..presenters import human_quantity

        version, plan_name = str(spec.get("version", "")), spec.get("plan")
        facts = [Fact("Engine", f"Redis {version} ({REDIS_VERSIONS.get(version, '?')})")]
        plan = CACHE_PLANS.get(plan_name) if isinstance(plan_name, str) else None
        if plan is not None:
            cpu = human_quantity(specs.parse_quantity(plan.cpu_limit), "cpu")
            memory = human_quantity(specs.parse_quantity(plan.memory_limit), "memory")
            facts.append(Fact("Plan", f"{plan_name} (up to {cpu}, {memory} memory; holds {plan.maxmemory})"))
            storage = human_quantity(specs.parse_quantity(plan.storage), "storage")
            on = f"on: a {storage} volume" if spec.get("persistence") else "off: in memory only, not backed up"
            facts.append(Fact("Persistence", on))
        return facts

    def form_class(self):
        return CacheRequestForm


register(CacheKind())
