from django.apps import AppConfig


class ProvisioningConfig(AppConfig):
    name = "provisioning"

    def ready(self) -> None:
        from requests_app.sections import (
            lazy_section,
            request_sections,
            resource_prefetch,
            resource_sections,
        )

        from . import metrics, receivers  # noqa: F401  (failures counted; provisioning enqueued on approval)
        from .kinds import PROVISIONING_KINDS

        PROVISIONING_KINDS.discover()  # each module of provisioning/kinds/ registers its kind's renderer
        from .services.plan import connection_section, plan_yaml
        from .services.progress import provisioning_progress
        from .services.releases import releases_section

        # By its path: the serializers (and Django REST framework) are imported when a resource is rendered.
        resource_sections["objects"] = lazy_section("provisioning.api.serializers.objects_section")
        request_sections["plan_yaml"] = plan_yaml
        request_sections["provisioning"] = provisioning_progress
        resource_sections["connection"] = connection_section
        resource_sections["releases"] = releases_section
        from django.db.models import Prefetch

        from requests_app.models import ResourceRequest

        from .models import ManagedObject, Release

        # A list of resources reads the sections' rows in one query each, not one per resource, in the
        # order each section shows them. (The models' default orderings start with `resource`, which
        # joins every resource in the table to sort by the resource's creation, on every page.)
        # The request that created each resource (`connection` reads its frozen provider) in a query of
        # its own: one more join in the page's query cost PostgreSQL more to plan (10-50 ms at 100k
        # requests, on a loaded machine) than this query costs to run.
        resource_prefetch.extend(
            [
                Prefetch("created_by_request", queryset=ResourceRequest.objects.only("id", "state", "frozen")),
                # Into plain lists (`to_attr`): a manager and a queryset per resource cost more than the rows.
                Prefetch("managed_objects", queryset=ManagedObject.objects.order_by("id"), to_attr="listed_objects"),
                Prefetch(
                    "releases",
                    queryset=Release.objects.defer("spec", "manifests").order_by("-number"),
                    to_attr="listed_releases",
                ),
            ]
        )
