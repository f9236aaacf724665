from django.apps import AppConfig


class ProvisioningConfig(AppConfig):
    name = "provisioning"

    def ready(self) -> None:
        from requests_app.sections import request_sections, resource_prefetch, resource_sections, resource_select

        from . import metrics, receivers  # noqa: F401  (failures counted; provisioning enqueued on approval)
        from .api.serializers import objects_section
        from .services import connection_section, plan_yaml, provisioning_progress, releases_section

        resource_sections["objects"] = objects_section
        request_sections["plan_yaml"] = plan_yaml
        request_sections["provisioning"] = provisioning_progress
        resource_sections["connection"] = connection_section
        resource_sections["releases"] = releases_section
        # A list of resources reads the sections' rows in one query each, not one per resource.
        resource_select.append("created_by_request")
        resource_prefetch.extend(["managed_objects", "releases"])
