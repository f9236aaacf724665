from django.apps import AppConfig


class LeasesConfig(AppConfig):
    name = "leases"

    def ready(self) -> None:
        from requests_app.sections import lazy_section, resource_sections, resource_select, resource_select_fields

        from . import receivers  # noqa: F401  (opens a lease when a resource becomes active)
        from .kinds import LEASE_KINDS

        LEASE_KINDS.discover()  # each module of leases/kinds/ registers its kind's backup and page
        from .models import LEASE_SECTION_FIELDS

        # By its path: the serializers (and Django REST framework) are imported when a resource is rendered.
        resource_sections["lease"] = lazy_section("leases.api.serializers.lease_section")
        resource_select.append("lease")
        # What the section shows (lists read only these: not the last manifests, notices or claims).
        resource_select_fields.extend(f"lease__{name}" for name in ("id", "resource", *LEASE_SECTION_FIELDS))
