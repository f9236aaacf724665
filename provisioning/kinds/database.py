"""A database renders as its Secret and a StatefulSet (or a CloudNativePG Cluster), with a generated password."""

from __future__ import annotations

from ..renderers import (
    DatabaseSpec,
    RenderContext,
    database_connection,
    database_manifests,
    database_secret_name,
)
from . import PROVISIONING_KINDS, namespace_of, with_generated_password


def database_spec_of(name: str, namespace: str, spec: dict) -> DatabaseSpec:
    return DatabaseSpec(
        name=name, namespace=namespace, version=spec["version"], storage=spec["storage"], plan=spec["plan"]
    )


def render_database(request, ctx: RenderContext, password: str) -> list[dict]:
    return database_manifests(
        db=database_spec_of(request.name, namespace_of(request), request.spec),
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
    with_generated_password(
        "database", render=render_database, connection=database_connection_of, secret_name=database_secret_name
    ),
)
