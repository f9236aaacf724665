from django.apps import AppConfig


class LeasesConfig(AppConfig):
    name = "leases"

    def ready(self) -> None:
        from requests_app.sections import resource_sections, resource_select

        from . import receivers  # noqa: F401  (opens a lease when a resource becomes active)
        from .api.serializers import lease_section

        resource_sections["lease"] = lease_section
        resource_select.append("lease")
