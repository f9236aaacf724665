"""What the provisioning app adds to each kind: its renderer, the Secret whose generated password a re-run
keeps, how to reach it (`connection`), the Secret that what binds to it reads, and which of its objects
readiness waits for and quarantine scales to zero.

Each module of this package registers one kind's (`PROVISIONING_KINDS.register`), from the app's
`ready()`; requests_app.kinds holds the kinds themselves (this layer looks them up, never the reverse).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from requests_app.kinds.base import KindExtensions

from ..renderers import RenderContext

# The objects readiness waits for (with LEASEHOLD_WAIT_FOR_READY) and quarantine scales to zero.
WORKLOAD_KINDS = ("Deployment", "StatefulSet")
# The plan shows where a generated password goes, never a password.
PASSWORD_PLACEHOLDER = "(generated when applied)"


def _no_renderer(request, ctx: RenderContext, password: str) -> list[dict]:
    raise ValueError(f"no renderer for kind {request.kind!r}")


@dataclass(frozen=True)
class ProvisioningKind:
    name: str
    # The manifests a create request applies, in apply order: (request, ctx, password) -> manifests. Uses
    # only the request and what was frozen on it. `password` is the placeholder until the worker has read
    # (or generated) the real one.
    render: Callable[[Any, RenderContext, str], list[dict]] = _no_renderer
    # The Secret (namespace, name) holding a password generated at the first apply, which a re-run must
    # not rotate: (request) -> (namespace, name); None: the kind generates none.
    password_secret: Callable[[Any], tuple[str, str]] | None = None
    # How to reach a live resource (never a password): (resource) -> dict; None: nothing to say.
    connection: Callable[[Any], dict | None] = lambda resource: None
    # The Secret that resources bound to this one read (`secretKeyRef`): (resource) -> name.
    binding_secret: Callable[[Any], str] | None = None
    # The object kinds readiness waits for and quarantine scales to zero.
    workloads: tuple[str, ...] = WORKLOAD_KINDS


PROVISIONING_KINDS: KindExtensions[ProvisioningKind] = KindExtensions("provisioning.kinds", ProvisioningKind)


def namespace_of(obj) -> str:
    """The namespace a request or resource of a kind that lives in one goes into."""
    return obj.parent.namespace_name if obj.parent is not None else ""


def with_generated_password(
    name: str, *, render: Callable, connection: Callable, secret_name: Callable[[str], str]
) -> ProvisioningKind:
    """A kind that lives in a namespace and keeps a password generated at its first apply in the Secret
    `secret_name(<resource name>)`, which is also the Secret that what binds to it reads."""
    return ProvisioningKind(
        name,
        render=render,
        password_secret=lambda request: (namespace_of(request), secret_name(request.name)),
        connection=connection,
        binding_secret=lambda resource: secret_name(resource.name),
    )


def render_for(request, ctx: RenderContext, password: str | None = None) -> list[dict]:
    """The manifests of a create request, by its kind's renderer."""
    return PROVISIONING_KINDS.get(request.kind).render(request, ctx, password or PASSWORD_PLACEHOLDER)
