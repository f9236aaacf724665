"""The app kind: an app from a template in a namespace; it binds to what other kinds offer (`bindings_from`)."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from .. import specs
from ..errors import ValidationFailed
from . import bindings_from, register
from .base import Fact, ResourceKind

# The template fields an app request freezes (what the worker renders), and the catalog shows.
TEMPLATE_RESOURCE_FIELDS = ("cpu_request", "cpu_limit", "memory_request", "memory_limit")
TEMPLATE_FROZEN_FIELDS = (
    "slug",
    "image_repository",
    "container_port",
    "health_path",
    "default_env",
    *TEMPLATE_RESOURCE_FIELDS,
    "accepts_database",
)


def template_fields(template, fields: Sequence[str] = TEMPLATE_FROZEN_FIELDS) -> dict[str, Any]:
    """An app template as the dict frozen on a request."""
    return {name: getattr(template, name) for name in fields}


def template_usage(spec: dict, template: dict) -> specs.Usage:
    """What `spec.replicas` replicas of a template (as frozen) take: their limits."""
    resources = specs.ComputeResources(
        template.get("cpu_request", "0"),
        template["cpu_limit"],
        template.get("memory_request", "0"),
        template["memory_limit"],
    )
    return specs.app_usage(spec.get("replicas", 1), resources)


class AppKind(ResourceKind):
    name = "app"
    order = 30
    description = "An app from a template, in one of your namespaces, optionally bound to a database."
    backup_note = "not backed up: an app keeps no data of its own"

    def binding_keys(self) -> list[str]:
        return [b.spec_key for b in bindings_from(self.name)]

    def validate_spec(self, spec: dict, *, ingress_domains: Sequence[str], service_hosts: Collection[str]) -> dict:
        return specs.app_spec(
            spec, ingress_domains=ingress_domains, service_hosts=service_hosts, bindings=self.binding_keys()
        )

    def schema(self) -> dict:
        return {
            "type": "object",
            "required": ["namespace", "template"],
            "properties": {
                "namespace": specs.NAMESPACE_REF_SCHEMA,
                "template": {"type": "string", "description": "An app template's slug"},
                "image_tag": {"type": "string", "pattern": specs.IMAGE_TAG.pattern},
                "replicas": {"type": "integer", "minimum": 1, "maximum": specs.APP_MAX_REPLICAS, "default": 1},
                "env": {"type": "object", "additionalProperties": {"type": "string"}},
                "host": {
                    "type": "string",
                    "description": "Ingress host: a name under one of the catalog's ingress_domains, used by "
                    "no other app, e.g. checkout.apps.example.org",
                },
            },
            "additionalProperties": False,
        }

    def catalog_extras(self) -> dict:
        from django.conf import settings

        from ..models import AppTemplate

        return {
            "templates": list(AppTemplate.objects.filter(active=True).order_by("slug").values_list("slug", flat=True)),
            # An app's host must be a name under one of these (empty: apps get no host).
            "ingress_domains": list(settings.LEASEHOLD_INGRESS_DOMAINS),
            "binds_to": {b.spec_key: b.target_kind for b in bindings_from(self.name)},
        }

    def admit(self, *, spec: dict, team, namespace) -> None:
        from ..models import AppTemplate

        template = AppTemplate.objects.filter(slug=spec["template"], active=True).first()
        if template is None:
            raise ValidationFailed({"spec.template": [f"No app template {spec['template']!r} (see the catalog)."]})
        spec.setdefault("image_tag", template.default_tag)
        for binding in bindings_from(self.name):
            if spec.get(binding.spec_key) and binding.template_flag and not getattr(template, binding.template_flag):
                raise ValidationFailed(
                    {f"spec.{binding.spec_key}": [f"The {template.name} template cannot use a {binding.target_kind}."]}
                )

    def conflicts(self, spec: dict) -> dict[str, list[str]]:
        from ..services import app_host_taken, host_taken_message

        if spec.get("host") and app_host_taken(spec["host"]):
            return {"spec.host": [host_taken_message(spec["host"])]}
        return {}

    def frozen_inputs(self, spec: dict) -> dict:
        from django.conf import settings

        from ..models import AppTemplate

        template = AppTemplate.objects.get(slug=spec["template"])
        return {"template": template_fields(template), "ingress_class": settings.LEASEHOLD_INGRESS_CLASS or None}

    def usage_context(self, specs_: list[dict]) -> dict[str, dict]:
        from ..models import AppTemplate

        slugs = [s.get("template") for s in specs_ if isinstance(s, dict)]
        return {
            t.slug: template_fields(t, ("slug", "image_repository", *TEMPLATE_RESOURCE_FIELDS))
            for t in AppTemplate.objects.filter(slug__in=slugs)
        }

    def template_of(self, spec: dict, *, frozen: dict | None, context: dict | None) -> dict:
        """The template as frozen on the request (what the worker applies), else as it is now."""
        template = (frozen or {}).get("template") if isinstance(frozen, dict) else None
        if isinstance(template, dict) and template:
            return template
        slug = spec.get("template", "") if isinstance(spec, dict) else ""
        if context is None or slug not in context:
            context = self.usage_context([spec]) if context is None else {**context, **self.usage_context([spec])}
        return context.get(slug, {})

    def usage(self, spec, *, frozen=None, context=None) -> specs.Usage | None:
        template = self.template_of(spec, frozen=frozen, context=context)
        return template_usage(spec, template) if template.get("cpu_limit") else None

    def size(self, spec: dict) -> str:
        return f"{spec.get('template', '?')} × {spec.get('replicas', 1)}"

    def summary_facts(self, request, spec: dict, lookups) -> list[Fact]:
        from ..presenters import human_quantity, resource_url

        template = self.template_of(spec, frozen=request.frozen, context=lookups.templates)
        lookups.templates.setdefault(template.get("slug", ""), template)
        facts = [Fact("Template", str(spec.get("template", template.get("slug", "?"))))]
        repository = template.get("image_repository", "")
        tag = spec.get("image_tag") or ""
        if repository or tag:
            facts.append(Fact("Image", f"{repository}:{tag}" if repository and tag else repository or tag))
        replicas = spec.get("replicas", 1)
        size = f"{replicas} replica{'s' if replicas != 1 else ''}"
        if template.get("cpu_limit") and template.get("memory_limit") and isinstance(replicas, int):
            usage = template_usage(spec, template)
            size += f" (up to {human_quantity(usage.cpu, 'cpu')}, {human_quantity(usage.memory, 'memory')} memory)"
        facts.append(Fact("Size", size))
        for binding in bindings_from(self.name):
            ref = spec.get(binding.spec_key)
            if not ref:
                continue
            bound = lookups.bound.get(str(ref))
            if bound is not None and bound.kind == binding.target_kind:
                facts.append(Fact(binding.label, bound.display_name, resource_url(bound)))
            else:
                facts.append(Fact(binding.label, f"a {binding.target_kind} that no longer exists"))
        host = spec.get("host")
        if host:
            facts.append(Fact("Host", str(host), f"https://{host}/"))
        env = spec.get("env")
        if isinstance(env, dict) and env:
            facts.append(Fact("Environment variables", ", ".join(sorted(map(str, env)))))
        return facts

    def form_class(self):
        from ..forms import AppRequestForm

        return AppRequestForm


register(AppKind())
