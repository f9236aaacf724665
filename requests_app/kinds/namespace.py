"""The namespace kind: `<team>-<name>` with a quota; it takes from its team's budget and holds the rest."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from .. import specs
from . import register
from .base import Fact, ResourceKind


class NamespaceKind(ResourceKind):
    name = "namespace"
    order = 10
    description = "A namespace <team>-<name>: quota, default limits, team access, network policy."
    in_namespace = False
    service_named = False
    backup_note = "its databases are backed up before deletion"
    plans = specs.NAMESPACE_PLANS

    def validate_name(self, team_slug: str, name: str, reserved: Collection[str]) -> list[str]:
        return specs.validate_namespace_name(team_slug, name, *reserved)

    def validate_spec(self, spec: dict, *, ingress_domains: Sequence[str], service_hosts: Collection[str]) -> dict:
        specs.namespace_quota(spec)
        return dict(spec)

    def schema(self) -> dict:
        quantity_schema = specs.QUANTITY_SCHEMA
        return {
            "type": "object",
            "oneOf": [
                {"required": ["plan"], "properties": {"plan": {"enum": list(specs.NAMESPACE_PLANS)}}},
                {
                    "required": ["cpu", "memory", "storage"],
                    "properties": {"cpu": quantity_schema, "memory": quantity_schema, "storage": quantity_schema},
                },
            ],
            "additionalProperties": False,
        }

    def usage(self, spec, *, frozen=None, context=None) -> specs.Usage:
        return specs.quota_usage(specs.namespace_quota(spec))

    def policy_quantities(self, spec: dict) -> dict:
        usage = self.usage(spec)
        return {"cpu": usage.cpu, "memory": usage.memory, "storage": usage.storage}

    def size(self, spec: dict) -> str:
        if spec.get("plan"):
            return str(spec["plan"])
        return " / ".join(str(spec.get(k, "?")) for k in ("cpu", "memory", "storage"))

    def summary_facts(self, request, spec: dict, lookups) -> list[Fact]:
        from ..presenters import human_quantity

        try:
            quota = specs.namespace_quota(spec)
        except specs.ValidationFailed:
            return [Fact("Plan", str(spec.get("plan", "custom")))]
        usage = specs.quota_usage(quota)
        return [
            Fact("Plan", str(spec.get("plan") or "custom quantities")),
            Fact(
                "Quota",
                f"{human_quantity(usage.cpu, 'cpu')}, {human_quantity(usage.memory, 'memory')} memory, "
                f"{human_quantity(usage.storage, 'storage')} storage",
            ),
        ]

    def form_class(self):
        from ..forms import NamespaceRequestForm

        return NamespaceRequestForm


register(NamespaceKind())
