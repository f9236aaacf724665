"""Kind-specific validation of request specs, and the quantities a spec asks for. No I/O."""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal

from kubernetes.utils import parse_quantity

from .errors import ValidationFailed
from .models import Kind

DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
# Names that belong to Kubernetes, OpenShift or the platform itself: never created for a team.
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


def quantity(value: object) -> Decimal | None:
    """Parse a Kubernetes quantity; None when it is not one (or not positive)."""
    if not isinstance(value, str | int) or isinstance(value, bool):
        return None
    try:
        parsed = parse_quantity(value)
    except (ValueError, TypeError, ArithmeticError):
        return None
    return parsed if parsed > 0 else None


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


def validate_namespace_name(team_slug: str, name: str, service_namespace: str) -> list[str]:
    """Check `name` and the namespace `<team>-<name>` it becomes."""
    errors = validate_dns_label(name)
    if errors:
        return errors
    full = f"{team_slug}-{name}"
    if len(full) > 63:
        return [f"The namespace '{full}' would be {len(full)} characters; at most 63 are allowed."]
    if full in RESERVED_NAMES or full == service_namespace or full.startswith(RESERVED_PREFIXES):
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
        if plan not in NAMESPACE_PLANS:
            raise ValidationFailed({"spec.plan": [f"Must be one of: {', '.join(NAMESPACE_PLANS)}."]})
        return NAMESPACE_PLANS[plan]
    errors: dict[str, list[str]] = {}
    for key in ("cpu", "memory", "storage"):
        if key not in explicit:
            errors[f"spec.{key}"] = ["Required when no plan is given."]
            continue
        parsed = quantity(explicit[key])
        if parsed is None:
            errors[f"spec.{key}"] = [f"{explicit[key]!r} is not a positive Kubernetes quantity (e.g. 2, 500m, 4Gi)."]
        elif parsed > parse_quantity(getattr(NAMESPACE_MAX, key)):
            errors[f"spec.{key}"] = [f"At most {getattr(NAMESPACE_MAX, key)} (the large plan)."]
    if errors:
        raise ValidationFailed(errors)
    return Quota(cpu=str(explicit["cpu"]), memory=str(explicit["memory"]), storage=str(explicit["storage"]))


def plan_of(kind: str, spec: dict) -> str | None:
    """The plan named in a spec, used by approval policy matching."""
    plan = spec.get("plan") if isinstance(spec, dict) else None
    return plan if isinstance(plan, str) else None


def validate_spec(kind: str, spec: dict) -> dict:
    """Validate a spec for `kind`, returning it normalised. Only namespaces exist so far."""
    if kind == Kind.NAMESPACE:
        namespace_quota(spec)
        return dict(spec)
    raise ValidationFailed({"kind": [f"Requests for {kind!r} are not available yet; only 'namespace' is."]})
