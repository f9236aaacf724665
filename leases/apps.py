from django.apps import AppConfig


class LeasesConfig(AppConfig):
    name = "leases"

    def ready(self) -> None:
        from requests_app.sections import lazy_section, resource_sections, resource_select

        from . import receivers  # noqa: F401  (opens a lease when a resource becomes active)

        # By its path: the serializers (and Django REST framework) are imported when a resource is rendered.
        resource_sections["lease"] = lazy_section("leases.api.serializers.lease_section")
        resource_select.append("lease")
