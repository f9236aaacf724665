"""A namespace renders as the Namespace with its quota, limits, team access and network policy."""

from __future__ import annotations

from django.conf import settings

from ..renderers import RenderContext, manifests_for
from . import PROVISIONING_KINDS, ProvisioningKind


def render_namespace(request, ctx: RenderContext, password: str) -> list[dict]:
    # The pod security level in force, not one frozen on the request: a changed setting reaches every
    # namespace at its next apply, which the reconcile does for the ones already running.
    return manifests_for(
        kind=request.kind,
        team=request.team.slug,
        name=request.name,
        spec=request.spec,
        ctx=ctx,
        pod_security=settings.LEASEHOLD_POD_SECURITY[request.environment],
        pod_security_version=settings.LEASEHOLD_POD_SECURITY_VERSION,
    )


PROVISIONING_KINDS.register("namespace", ProvisioningKind("namespace", render=render_namespace))
