from django.apps import AppConfig


class ProvisioningConfig(AppConfig):
    name = "provisioning"

    def ready(self) -> None:
        from requests_app.sections import request_sections, resource_sections

        from . import receivers  # noqa: F401  (enqueues provisioning when a request is approved)
        from .api.serializers import objects_section
        from .services import plan_yaml

        resource_sections["objects"] = objects_section
        request_sections["plan_yaml"] = plan_yaml
        # Only databases have connection details; namespaces have none.
        resource_sections.setdefault("connection", lambda resource: None)
