"""An app renders as a Deployment, a Service and (with a host) an Ingress; it reads what it binds to (a
database's, a cache's Secret) through `secretKeyRef`, whatever kinds offer bindings (requests_app.kinds)."""

from __future__ import annotations

from requests_app import kinds
from requests_app.errors import InvalidState
from requests_app.models import Resource

from ..renderers import AppSpec, AppTemplateSpec, ComputeResources, RenderContext, SecretBinding, app_manifests
from . import PROVISIONING_KINDS, ProvisioningKind, namespace_of


def app_bindings(spec: dict) -> tuple[SecretBinding, ...]:
    """The Secrets an app spec binds to; InvalidState when one of the resources it names is gone."""
    out = []
    for binding in kinds.bindings_from("app"):
        ref = spec.get(binding.spec_key)
        if not ref:
            continue
        bound = Resource.objects.filter(pk=ref, kind=binding.target_kind).exclude(state__in=Resource.TERMINAL).first()
        if bound is None:
            raise InvalidState(f"The {binding.target_kind} {ref} that this app binds to no longer exists.")
        secret = PROVISIONING_KINDS.get(binding.target_kind).binding_secret
        if secret is None:
            raise InvalidState(f"A {binding.target_kind} has no Secret to bind to.")
        out.append(SecretBinding(secret(bound), binding.env, binding.target_kind, binding.template_flag))
    return tuple(out)


def render_app(request, ctx: RenderContext, password: str) -> list[dict]:
    template, spec = request.frozen["template"], request.spec
    app = AppSpec(
        name=request.name,
        namespace=namespace_of(request),
        template=AppTemplateSpec(
            slug=template["slug"],
            image_repository=template["image_repository"],
            container_port=template["container_port"],
            health_path=template["health_path"],
            default_env=template["default_env"],
            resources=ComputeResources(
                template["cpu_request"], template["cpu_limit"], template["memory_request"], template["memory_limit"]
            ),
            accepts_database=template["accepts_database"],
        ),
        image_tag=spec["image_tag"],
        replicas=spec["replicas"],
        env=spec.get("env") or {},
        host=spec.get("host"),
        ingress_class=request.frozen.get("ingress_class"),
        bindings=app_bindings(spec),
    )
    return app_manifests(app=app, ctx=ctx)


PROVISIONING_KINDS.register("app", ProvisioningKind("app", render=render_app))
