"""What a kind is: the interface every kind of this package implements, and the shapes it shares."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Generic, TypeVar

from .. import specs
from ..errors import ValidationFailed
from ..names import kind_title

T = TypeVar("T")


@dataclass(frozen=True)
class Fact:
    """One line of a request's summary; `url` links to the resource or address it names."""

    label: str
    value: str
    url: str = ""


@dataclass(frozen=True)
class Binding:
    """How a resource of `source_kind` binds to one of `target_kind`: its spec names the target's resource
    id under `spec_key`, and its containers read each variable of `env` from the target's Secret (variable
    name -> Secret key, through `secretKeyRef`). Declared by the target kind, so that a kind others bind
    to brings its binding with it and the binding kind needs no edit."""

    source_kind: str  # "app"
    spec_key: str  # "database"
    target_kind: str  # "database"
    env: tuple[tuple[str, str], ...]  # (("PGHOST", "host"), ...)
    help_text: str = ""
    # An app template field that must be true for the binding ("accepts_database"); empty: any template.
    template_flag: str = ""

    @property
    def label(self) -> str:
        return kind_title(self.target_kind)


class ResourceKind:
    """One kind of resource. Subclasses set the class attributes and override what differs."""

    name: str = ""
    order: int = 100  # catalog order
    description: str = ""
    # Lives in a namespace resource (`spec.namespace`) and takes from its quota; False: it is a namespace,
    # taking from its team's budget.
    in_namespace: bool = True
    # Becomes a Service of its name: kinds with this share one name space within a team.
    service_named: bool = True
    # Bindings into resources of this kind (declared here, by the kind bound to).
    bindings: tuple[Binding, ...] = ()
    # What the catalog says about data kept at reclamation ("backed up before deletion", "not backed up: ...").
    backup_note: str = ""
    plans: dict[str, Any] = {}

    @property
    def title(self) -> str:
        return kind_title(self.name)

    # --- filing ------------------------------------------------------------------------------------------

    def validate_name(self, team_slug: str, name: str, reserved: Collection[str]) -> list[str]:
        if self.service_named:
            return specs.validate_workload_name(name)
        return specs.validate_dns_label(name)

    def validate_spec(self, spec: dict, *, ingress_domains: Sequence[str], service_hosts: Collection[str]) -> dict:
        """The spec's shape checked and normalised (defaults filled in); raises ValidationFailed."""
        raise NotImplementedError

    def schema(self) -> dict:
        """The spec's JSON schema for the catalog (`validate_spec` is the authority)."""
        raise NotImplementedError

    def spec_keys(self) -> set[str]:
        """The spec's fields besides the bindings into other kinds."""
        return set(self.schema().get("properties", {}))

    def admit(self, *, spec: dict, team, namespace) -> None:
        """References beyond the spec's shape (an app's template); may fill in defaults. The bindings and
        the quota are checked by the service. Raises ValidationFailed."""

    def conflicts(self, spec: dict) -> dict[str, list[str]]:
        """Field errors for what another resource or request holds already (an app's Ingress host)."""
        return {}

    def frozen_inputs(self, spec: dict) -> dict:
        """What besides the spec decides the rendered objects, as it is now (kept on the request)."""
        return {}

    def catalog_entry(self) -> dict:
        """This kind's entry in the catalog: `kind`, `description`, `schema`, its `plans`, what happens to its
        data at reclamation (`backup`), and what `catalog_extras` adds."""
        entry: dict[str, Any] = {"kind": self.name, "description": self.description, "schema": self.full_schema()}
        if self.plans:
            entry["plans"] = {name: asdict(plan) for name, plan in self.plans.items()}
        entry.update(self.catalog_extras())
        if self.backup_note:
            entry["backup"] = self.backup_note
        return entry

    def catalog_extras(self) -> dict:
        """What else the catalog says about this kind (engines and versions, templates)."""
        return {}

    def full_schema(self) -> dict:
        """The schema with the bindings of other kinds into this one's spec (an app's `cache`)."""
        from . import bindings_from

        schema = self.schema()
        extra = {
            b.spec_key: {"type": "string", "description": f"A {b.target_kind} resource id in the same namespace"}
            for b in bindings_from(self.name)
            if b.spec_key not in schema.get("properties", {})
        }
        if extra:
            schema = {**schema, "properties": {**schema["properties"], **extra}}
        return schema

    # --- what it takes --------------------------------------------------------------------------------------

    def usage_context(self, specs_: list[dict]) -> Any:
        """What `usage` of these specs needs read at once (an app's templates): one query, not one each."""
        return None

    def usage(self, spec: dict, *, frozen: dict | None = None, context: Any = None) -> specs.Usage | None:
        """What a resource of this spec takes from its namespace's quota (or, not `in_namespace`, its team's
        budget); None when that cannot be told (a template gone)."""
        return specs.Usage()

    def policy_quantities(self, spec: dict) -> dict:
        """The quantities the approval policy's max_cpu/max_memory/max_storage compare ({} : none, so such a
        rule never matches)."""
        return {}

    # --- how it reads ---------------------------------------------------------------------------------------

    def size(self, spec: dict) -> str:
        """A short size for the approval queue: the plan, or the quantities."""
        return str(spec.get("plan", "?"))

    def summary_facts(self, request, spec: dict, lookups) -> list[Fact]:
        """The lines of the request summary that are this kind's (engine, plan, template, ...)."""
        return []

    def form_class(self):
        """The web form that files a request of this kind."""
        raise NotImplementedError


def unknown_fields(spec: dict, allowed: set[str]) -> None:
    unknown = set(spec) - allowed
    if unknown:
        raise ValidationFailed({"spec": [f"Unknown field(s): {', '.join(sorted(unknown))}."]})


class KindExtensions(Generic[T]):
    """What a higher app adds to each kind (provisioning: its renderer and readiness; leases: its backup),
    registered by that app's own modules of `package` (one per kind, imported the first time one is looked
    up), so that this layer never imports a higher one. A kind with no registration gets `default(name)`."""

    def __init__(self, package: str, default) -> None:
        self.package = package
        self.default = default
        self._by_kind: dict[str, T] = {}
        self._discovered = False

    def register(self, name: str, extension: T) -> T:
        self._by_kind[name] = extension
        return extension

    def get(self, name: str) -> T:
        if not self._discovered:
            self._discovered = True
            from . import autodiscover

            autodiscover(self.package)
        found = self._by_kind.get(name)
        return found if found is not None else self.default(name)

    def discover(self) -> None:
        """Import the package's modules now (from AppConfig.ready(), so that a missing one fails at start)."""
        self.get("")
