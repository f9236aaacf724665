from django.apps import AppConfig


class LeasesConfig(AppConfig):
    name = "leases"

    def ready(self) -> None:
        from requests_app.sections import resource_sections, resource_select, resource_select_fields

        from . import receivers  # noqa: F401  (opens a lease when a resource becomes active)
        from .api.serializers import LeaseSerializer, lease_section

        resource_sections["lease"] = lease_section
        resource_select.append("lease")
        # What the section shows (lists read only these: not the last manifests, notices or claims).
        resource_select_fields.extend(
            f"lease__{name}" for name in ("id", "resource", "state", *LeaseSerializer.Meta.fields)
        )
