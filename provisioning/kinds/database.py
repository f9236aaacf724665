"""A database renders as its Secret and a StatefulSet (or a CloudNativePG Cluster), with a generated password."""

from __future__ import annotations

from ..renderers import (
    DatabaseSpec,
    RenderContext,
    database_connection,
    database_manifests,
    database_secret_name,
)
from . import PROVISIONING_KINDS, ProvisioningKind


def database_spec_of(name: str, namespace: str, spec: dict) -> DatabaseSpec:
    return DatabaseSpec(
        name=name, namespace=namespace, version=spec["version"], storage=spec["storage"], plan=spec["plan"]
    )


def _namespace_of(request) -> str:
    return request.parent.namespace_name if request.parent else ""


def render_database(request, ctx: RenderContext, password: str) -> list[dict]:
    return database_manifests(
        db=database_spec_of(request.name, _namespace_of(request), request.spec),
        password=password,
        ctx=ctx,
        provider=request.frozen.get("provider", "statefulset"),
    )


def database_connection_of(resource) -> dict | None:
    """How to reach a database (never its password): the `connection` part of a resource."""
    if resource.parent is None:
        return None
    provider = resource.created_by_request.frozen.get("provider", "statefulset")
    return database_connection(database_spec_of(resource.name, resource.parent.namespace_name, resource.spec), provider)


PROVISIONING_KINDS.register(
    "database",
    ProvisioningKind(
        "database",
        render=render_database,
        password_secret=lambda request: (_namespace_of(request), database_secret_name(request.name)),
        connection=database_connection_of,
        binding_secret=lambda resource: database_secret_name(resource.name),
    ),
)
