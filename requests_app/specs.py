"""Kind-specific validation of request specs, and the quantities a spec asks for. No I/O."""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from decimal import Decimal

from .errors import ValidationFailed
from .quantities import parse_quantity

DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
# Namespaces that belong to Kubernetes or OpenShift: never created for a team, never torn down. The
# service's own namespaces (settings) are added by `requests_app.services.reserved_namespaces`.
RESERVED_PREFIXES = ("kube-", "openshift-")
RESERVED_NAMES = frozenset({"default", "kube-system", "kube-public", "kube-node-lease"})


@dataclass(frozen=True)
class Quota:
    """CPU, memory and storage that a namespace may use, as Kubernetes quantity strings."""

    cpu: str
    memory: str
    storage: str


NAMESPACE_PLANS: dict[str, Quota] = {
    "small": Quota(cpu="2", memory="4Gi", storage="20Gi"),
    "medium": Quota(cpu="4", memory="8Gi", storage="50Gi"),
    "large": Quota(cpu="8", memory="16Gi", storage="100Gi"),
}
# Custom quantities may not exceed the largest plan: bigger needs go through the platform team.
NAMESPACE_MAX = NAMESPACE_PLANS["large"]


def one_of(value: object, choices) -> bool:
    """Whether `value` is one of the string `choices`; a value of any other JSON type (an object, a list,
    a number, null) is simply not one, rather than an error (objects and lists are not hashable)."""
    return isinstance(value, str) and value in choices


def describe(value: object) -> str:
    """A bad value as an error message shows it: short text or a whole number as given, else its JSON type."""
    if isinstance(value, bool) or value is None:
        return "true" if value is True else "false" if value is False else "null"
    if isinstance(value, str | int):
        shown = repr(value)
        return shown if len(shown) <= 40 else shown[:37] + "..."
    return {dict: "an object", list: "a list", float: "a fractional number"}.get(type(value), "this value")


def quantity(value: object) -> Decimal | None:
    """Parse a Kubernetes quantity; None when it is not one (or not positive)."""
    if not isinstance(value, str | int) or isinstance(value, bool):
        return None
    try:
        parsed = parse_quantity(value)
    except (ValueError, TypeError, ArithmeticError):
        return None
    # The client's parser takes "NaN" and "Infinity" (Kubernetes does not); a NaN cannot even be compared.
    return parsed if parsed.is_finite() and parsed > 0 else None


def validate_dns_label(name: str, field: str = "name") -> list[str]:
    if not name:
        return ["This field is required."]
    if len(name) > 63:
        return ["At most 63 characters."]
    if not DNS1123_LABEL.match(name):
        return [
            "Must be a DNS-1123 label: lower-case letters, digits and '-', starting and ending with a letter or digit."
        ]
    return []


def validate_namespace_name(team_slug: str, name: str, *reserved: str) -> list[str]:
    """Check `name` and the namespace `<team>-<name>` it becomes, which must not be one of Kubernetes'
    namespaces nor one of `reserved` (the service's own)."""
    errors = validate_dns_label(name)
    if errors:
        return errors
    full = f"{team_slug}-{name}"
    if len(full) > 63:
        return [f"The namespace '{full}' would be {len(full)} characters; at most 63 are allowed."]
    if full in RESERVED_NAMES or full in reserved or full.startswith(RESERVED_PREFIXES):
        return [f"The namespace '{full}' is reserved."]
    return []


def namespace_quota(spec: dict) -> Quota:
    """Validate a namespace spec (a plan, or explicit quantities) and return its quota."""
    if not isinstance(spec, dict):
        raise ValidationFailed({"spec": ["Must be an object."]})
    unknown = set(spec) - {"plan", "cpu", "memory", "storage"}
    if unknown:
        raise ValidationFailed({"spec": [f"Unknown field(s): {', '.join(sorted(unknown))}."]})
    plan = spec.get("plan")
    explicit = {k: spec[k] for k in ("cpu", "memory", "storage") if k in spec}
    if plan is not None:
        if explicit:
            raise ValidationFailed({"spec": ["Give either a plan or cpu/memory/storage, not both."]})
        if not one_of(plan, NAMESPACE_PLANS):
            raise ValidationFailed({"spec.plan": [f"Must be one of: {', '.join(NAMESPACE_PLANS)}."]})
        return NAMESPACE_PLANS[plan]
    errors: dict[str, list[str]] = {}
    for key in ("cpu", "memory", "storage"):
        if key not in explicit:
            errors[f"spec.{key}"] = ["Required when no plan is given."]
            continue
        parsed = quantity(explicit[key])
        if parsed is None:
            errors[f"spec.{key}"] = [
                f"{describe(explicit[key])} is not a positive Kubernetes quantity (e.g. 2, 500m, 4Gi)."
            ]
        elif parsed > parse_quantity(getattr(NAMESPACE_MAX, key)):
            errors[f"spec.{key}"] = [f"At most {getattr(NAMESPACE_MAX, key)} (the large plan)."]
    if errors:
        raise ValidationFailed(errors)
    return Quota(cpu=str(explicit["cpu"]), memory=str(explicit["memory"]), storage=str(explicit["storage"]))


@dataclass(frozen=True)
class ComputeResources:
    """Container requests and limits, as Kubernetes quantity strings."""

    cpu_request: str
    cpu_limit: str
    memory_request: str
    memory_limit: str


DATABASE_PLANS: dict[str, ComputeResources] = {
    "small": ComputeResources("250m", "500m", "512Mi", "1Gi"),
    "medium": ComputeResources("500m", "1", "1Gi", "2Gi"),
    "large": ComputeResources("1", "2", "2Gi", "4Gi"),
}
DATABASE_ENGINES = ("postgres",)
POSTGRES_VERSIONS = ("13", "14", "15", "16", "17")
DATABASE_DEFAULTS = {"engine": "postgres", "version": "16", "storage": "10Gi", "plan": "small"}
DATABASE_MAX_STORAGE = "100Gi"
APP_MAX_REPLICAS = 10
# Databases and apps become Services (DNS-1035: a letter first) and StatefulSet pods (`<name>-0`);
# 40 characters leave room for the suffixes Kubernetes and we add (`-credentials`, `-rw`).
WORKLOAD_NAME = re.compile(r"^[a-z]([-a-z0-9]{0,38}[a-z0-9])?$")
IMAGE_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
QUANTITY_SCHEMA = {"type": "string", "description": "Kubernetes quantity, e.g. 2, 500m, 4Gi"}
NAMESPACE_REF_SCHEMA = {"type": "string", "description": "The namespace's resource id, or its name"}
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


@dataclass(frozen=True)
class Usage:
    """What a resource takes from its namespace's quota (limits, since the quota caps both)."""

    cpu: Decimal = Decimal(0)
    memory: Decimal = Decimal(0)
    storage: Decimal = Decimal(0)

    def __add__(self, other: Usage) -> Usage:
        return Usage(self.cpu + other.cpu, self.memory + other.memory, self.storage + other.storage)


def validate_workload_name(name: str) -> list[str]:
    if not name:
        return ["This field is required."]
    if not WORKLOAD_NAME.match(name):
        return [
            "Must start with a lower-case letter, hold only lower-case letters, digits and '-', "
            "end with a letter or digit, and be at most 40 characters."
        ]
    return []


def _unknown(spec: dict, allowed: set[str]) -> None:
    unknown = set(spec) - allowed
    if unknown:
        raise ValidationFailed({"spec": [f"Unknown field(s): {', '.join(sorted(unknown))}."]})


def database_spec(spec: dict) -> dict:
    """Validate a database spec's shape and fill in the defaults (references are checked by the service)."""
    if not isinstance(spec, dict):
        raise ValidationFailed({"spec": ["Must be an object."]})
    _unknown(spec, {"namespace", "engine", "version", "storage", "plan"})
    out = {**DATABASE_DEFAULTS, **spec}
    errors: dict[str, list[str]] = {}
    if not isinstance(out.get("namespace"), str) or not out["namespace"]:
        errors["spec.namespace"] = ["Name the namespace (its resource id or its name) the database goes into."]
    if not one_of(out["engine"], DATABASE_ENGINES):
        errors["spec.engine"] = [f"Must be one of: {', '.join(DATABASE_ENGINES)}."]
    # 16 and "16" are the same version; True is not.
    if isinstance(out["version"], int) and not isinstance(out["version"], bool):
        out["version"] = str(out["version"])
    if not one_of(out["version"], POSTGRES_VERSIONS):
        errors["spec.version"] = [f"Must be one of: {', '.join(POSTGRES_VERSIONS)}."]
    storage = quantity(out["storage"])
    if storage is None:
        errors["spec.storage"] = [f"{describe(out['storage'])} is not a positive Kubernetes quantity (e.g. 10Gi)."]
    elif storage > parse_quantity(DATABASE_MAX_STORAGE):
        errors["spec.storage"] = [f"At most {DATABASE_MAX_STORAGE}."]
    if not one_of(out["plan"], DATABASE_PLANS):
        errors["spec.plan"] = [f"Must be one of: {', '.join(DATABASE_PLANS)}."]
    if errors:
        raise ValidationFailed(errors)
    out["storage"] = str(out["storage"])
    return out


def database_usage(spec: dict) -> Usage:
    plan = DATABASE_PLANS[spec["plan"]]
    return Usage(parse_quantity(plan.cpu_limit), parse_quantity(plan.memory_limit), parse_quantity(spec["storage"]))


def validate_host(host: object, *, domains: Sequence[str], service_hosts: Collection[str] = ()) -> list[str]:
    """Check an app's Ingress host: a DNS name under one of `domains` (not a domain itself), and not a
    name the service itself answers to. Uniqueness across apps is the service's check."""
    example = f"checkout.{domains[0]}" if domains else "checkout.apps.example.org"
    if (
        not isinstance(host, str)
        or len(host) > 253
        or not DNS_SUBDOMAIN.match(host)
        or any(len(label) > 63 for label in host.split("."))
    ):
        return [f"Must be a DNS name such as {example}."]
    if not domains:
        return ["This installation offers no Ingress hosts (no domain is configured); leave the host out."]
    if not any(host.endswith(f".{domain}") for domain in domains):
        under = ", ".join(f"*.{d}" for d in domains)
        return [f"Must be a name under {under} (not the domain itself), such as {example}."]
    if host in service_hosts:
        return [f"{host} is the address of Leasehold itself."]
    return []


def app_spec(
    spec: dict,
    *,
    ingress_domains: Sequence[str] = (),
    service_hosts: Collection[str] = (),
    bindings: Collection[str] = ("database",),
) -> dict:
    """Validate an app spec's shape (references and template defaults are filled in by the service).

    A host must be under one of `ingress_domains`; without any, no app may have a host. `bindings` are
    the spec keys naming what the app binds to (a database's resource id, a cache's: see the kinds).
    """
    if not isinstance(spec, dict):
        raise ValidationFailed({"spec": ["Must be an object."]})
    _unknown(spec, {"namespace", "template", "image_tag", "replicas", "env", "host", *bindings})
    out = {"replicas": 1, "env": {}, **spec}
    errors: dict[str, list[str]] = {}
    if not isinstance(out.get("namespace"), str) or not out["namespace"]:
        errors["spec.namespace"] = ["Name the namespace (its resource id or its name) the app goes into."]
    if not isinstance(out.get("template"), str) or not out["template"]:
        errors["spec.template"] = ["Choose an app template (see the catalog)."]
    tag = out.get("image_tag")
    if tag is not None and (not isinstance(tag, str) or not IMAGE_TAG.match(tag)):
        errors["spec.image_tag"] = ["Not an image tag: letters, digits, '_', '.', '-', at most 128 characters."]
    replicas = out["replicas"]
    if not isinstance(replicas, int) or isinstance(replicas, bool) or not 1 <= replicas <= APP_MAX_REPLICAS:
        errors["spec.replicas"] = [f"Must be a whole number from 1 to {APP_MAX_REPLICAS}."]
    env = out["env"]
    if not isinstance(env, dict) or len(env) > 50:
        errors["spec.env"] = ["Must be an object of at most 50 variables."]
    else:
        bad = [k for k, v in env.items() if not ENV_NAME.match(str(k)) or not isinstance(v, str) or len(v) > 4096]
        if bad:
            errors["spec.env"] = [
                f"Bad variable(s): {', '.join(sorted(map(str, bad)))} (names like LOG_LEVEL, string values)."
            ]
    for key in bindings:
        bound = out.get(key)
        if bound is not None and (not isinstance(bound, str) or not bound):
            errors[f"spec.{key}"] = [f"Give the {key}'s resource id."]
    if out.get("host") is None:
        out.pop("host", None)  # `"host": null` is no host
    host = out.get("host")
    if host is not None:
        host_errors = validate_host(host, domains=ingress_domains, service_hosts=service_hosts)
        if host_errors:
            errors["spec.host"] = host_errors
    if errors:
        raise ValidationFailed(errors)
    return out


def app_usage(replicas: int, resources: ComputeResources) -> Usage:
    return Usage(
        parse_quantity(resources.cpu_limit) * replicas, parse_quantity(resources.memory_limit) * replicas, Decimal(0)
    )


def quota_usage(quota: Quota) -> Usage:
    return Usage(parse_quantity(quota.cpu), parse_quantity(quota.memory), parse_quantity(quota.storage))


def format_quantity(value: Decimal, kind: str) -> str:
    """A readable quantity: CPU in cores, memory and storage in Gi."""
    if kind == "cpu":
        return f"{value.normalize():f}"
    return f"{(value / (1024**3)).quantize(Decimal('0.01')).normalize():f}Gi"


def plan_of(kind: str, spec: dict) -> str | None:
    """The plan named in a spec, used by approval policy matching."""
    plan = spec.get("plan") if isinstance(spec, dict) else None
    return plan if isinstance(plan, str) else None


def validate_spec(
    kind: str, spec: dict, *, ingress_domains: Sequence[str] = (), service_hosts: Collection[str] = ()
) -> dict:
    """Validate a spec's shape for `kind`, returning it normalised with defaults filled in."""
    from . import kinds

    return kinds.get(kind).validate_spec(spec, ingress_domains=ingress_domains, service_hosts=service_hosts)


def spec_schemas() -> dict[str, dict]:
    """JSON schemas of each kind's spec, for the catalog (each kind's checks are the authority)."""
    from . import kinds

    return {kind.name: kind.full_schema() for kind in kinds.all()}
