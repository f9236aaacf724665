"""Settings that decide what lands in team namespaces: Pod Security levels and Ingress domains.

Parsed and checked here, at start-up: a bad value is an ImproperlyConfigured error naming the variable.
"""

from __future__ import annotations

import re

from django.core.exceptions import ImproperlyConfigured

POD_SECURITY_LEVELS = ("privileged", "baseline", "restricted")
# The request environments (requests_app.models.Environment). Settings load before the apps, so the
# names are repeated here; a unit test keeps the two equal.
ENVIRONMENTS = ("dev", "test", "staging", "prod")
_POD_SECURITY_VERSION = re.compile(r"^(latest|v1\.(0|[1-9][0-9]*))$")
_DNS_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*$")


def pod_security_levels(raw: str, *, name: str = "LEASEHOLD_POD_SECURITY") -> dict[str, str]:
    """The Pod Security level of each environment's namespaces.

    `raw` is a comma list: a bare level is the default for every environment (`restricted` when none is
    given), `<environment>=<level>` overrides one, e.g. `baseline,prod=restricted` or `dev=baseline`.
    """
    default = ""
    overrides: dict[str, str] = {}
    for item in (part.strip() for part in raw.split(",")):
        if not item:
            continue
        environment, sep, level = (s.strip() for s in item.partition("="))
        if not sep:
            environment, level = "", environment
        if level not in POD_SECURITY_LEVELS:
            raise ImproperlyConfigured(
                f"{name}: {level!r} is not a Pod Security level; use {', '.join(POD_SECURITY_LEVELS)}."
            )
        if not sep:
            if default:
                raise ImproperlyConfigured(f"{name}: give at most one level without an environment (the default).")
            default = level
        elif environment not in ENVIRONMENTS:
            raise ImproperlyConfigured(f"{name}: {environment!r} is not an environment; use {', '.join(ENVIRONMENTS)}.")
        elif environment in overrides:
            raise ImproperlyConfigured(f"{name}: environment {environment!r} is given twice.")
        else:
            overrides[environment] = level
    return {e: overrides.get(e, default or "restricted") for e in ENVIRONMENTS}


def pod_security_version(raw: str, *, name: str = "LEASEHOLD_POD_SECURITY_VERSION") -> str:
    """`latest`, or a Kubernetes minor version such as `v1.30` (the rules as that release defined them)."""
    value = raw.strip()
    if not _POD_SECURITY_VERSION.match(value):
        raise ImproperlyConfigured(f"{name}: {value!r} is neither 'latest' nor a version such as 'v1.30'.")
    return value


def ingress_domains(values: list[str], *, name: str = "LEASEHOLD_INGRESS_DOMAINS") -> tuple[str, ...]:
    """The DNS domains app hosts may be under, lower-case, without a leading `*.` or a trailing dot."""
    domains: list[str] = []
    for value in values:
        domain = value.strip().lower().removeprefix("*.").removeprefix(".").removesuffix(".")
        if not domain:
            continue
        if len(domain) > 253 or not _DNS_NAME.match(domain):
            raise ImproperlyConfigured(f"{name}: {value.strip()!r} is not a DNS domain such as apps.example.org.")
        if domain not in domains:
            domains.append(domain)
    return tuple(domains)
