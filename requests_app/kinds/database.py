"""The database kind: a PostgreSQL database in a namespace; apps bind to it (`spec.database`)."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from django.conf import settings

from .. import specs
from . import register
from .base import Binding, Fact, ResourceKind

# The variables libpq (and most PostgreSQL clients) read, each from a key of the bound database's Secret.
DATABASE_ENV = (
    ("PGHOST", "host"),
    ("PGPORT", "port"),
    ("PGDATABASE", "dbname"),
    ("PGUSER", "username"),
    ("PGPASSWORD", "password"),
)


class DatabaseKind(ResourceKind):
    name = "database"
    order = 20
    description = "A PostgreSQL database in one of your namespaces."
    backup_note = "backed up (pg_dump) before deletion"
    plans = specs.DATABASE_PLANS
    bindings = (
        Binding(
            source_kind="app",
            spec_key="database",
            target_kind="database",
            env=DATABASE_ENV,
            help_text="Injects PGHOST, PGUSER, PGPASSWORD... from its Secret.",
            template_flag="accepts_database",
        ),
    )

    def validate_spec(self, spec: dict, *, ingress_domains: Sequence[str], service_hosts: Collection[str]) -> dict:
        return specs.database_spec(spec)

    def schema(self) -> dict:
        defaults = specs.DATABASE_DEFAULTS
        return {
            "type": "object",
            "required": ["namespace"],
            "properties": {
                "namespace": specs.NAMESPACE_REF_SCHEMA,
                "engine": {"enum": list(specs.DATABASE_ENGINES), "default": defaults["engine"]},
                "version": {"enum": list(specs.POSTGRES_VERSIONS), "default": defaults["version"]},
                "storage": {**specs.QUANTITY_SCHEMA, "default": defaults["storage"]},
                "plan": {"enum": list(specs.DATABASE_PLANS), "default": defaults["plan"]},
            },
            "additionalProperties": False,
        }

    def catalog_extras(self) -> dict:
        return {
            "engines": list(specs.DATABASE_ENGINES),
            "engine_name": "PostgreSQL",
            "versions": list(specs.POSTGRES_VERSIONS),
        }

    def frozen_inputs(self, spec: dict) -> dict:
        return {"provider": settings.LEASEHOLD_DATABASE_PROVIDER}

    def usage(self, spec, *, frozen=None, context=None) -> specs.Usage:
        return specs.database_usage(spec)

    def policy_quantities(self, spec: dict) -> dict:
        if not (spec.get("plan") and spec.get("storage")):
            return {}
        usage = self.usage(spec)
        return {"cpu": usage.cpu, "memory": usage.memory, "storage": usage.storage}

    def size(self, spec: dict) -> str:
        return f"{spec.get('plan', '?')}, {spec.get('storage', '?')}"

    def summary_facts(self, request, spec: dict, lookups) -> list[Fact]:
        from ..presenters import human_quantity

        engine = "PostgreSQL" if spec.get("engine", "postgres") == "postgres" else str(spec.get("engine"))
        facts = [Fact("Engine", f"{engine} {spec.get('version', '')}".strip())]
        plan = spec.get("plan")
        sizes = specs.DATABASE_PLANS.get(plan) if isinstance(plan, str) else None
        if sizes is not None:
            cpu = human_quantity(specs.parse_quantity(sizes.cpu_limit), "cpu")
            memory = human_quantity(specs.parse_quantity(sizes.memory_limit), "memory")
            facts.append(Fact("Plan", f"{plan} (up to {cpu}, {memory} memory)"))
        storage = specs.quantity(spec.get("storage"))
        if storage is not None:
            facts.append(Fact("Storage", human_quantity(storage, "storage")))
        return facts

    def form_class(self):
        from ..forms import DatabaseRequestForm

        return DatabaseRequestForm


register(DatabaseKind())
