"""The serializers of the Resource API (`/api/v1/resources/`) and of the `lease` section it shows."""

from __future__ import annotations

from typing import Any

from django.utils import timezone
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from leases.models import LEASE_SECTION_FIELDS, Lease
from requests_app.api.serializers import CLUSTER_HELP, DISPLAY_NAME_HELP, NULLABLE_OBJECT, api_datetime
from requests_app.models import Resource
from requests_app.sections import resource_sections


class LeaseSerializer(serializers.ModelSerializer):
    class Meta:
        model = Lease
        fields = list(LEASE_SECTION_FIELDS)


def lease_row(lease: Lease) -> dict:
    """LeaseSerializer's representation, built directly (tests/api/test_list_rows.py compares them)."""
    tz = timezone.get_current_timezone()
    return {
        "state": str(lease.state),
        "starts_at": api_datetime(lease.starts_at, tz),
        "expires_at": api_datetime(lease.expires_at, tz),
        "grace_until": api_datetime(lease.grace_until, tz),
        "extensions": int(lease.extensions),
        "reclaimed_at": api_datetime(lease.reclaimed_at, tz),
        "last_report": str(lease.last_report),
    }


def lease_section(resource) -> dict | None:
    """The `lease` part of a resource's representation."""
    try:
        lease = resource.lease  # selected with the list (see LeasesConfig.ready)
    except Lease.DoesNotExist:
        return None
    return lease_row(lease)


class ResourceSerializer(serializers.ModelSerializer):
    display_name = serializers.CharField(read_only=True, help_text=DISPLAY_NAME_HELP)
    team = serializers.CharField(source="team.slug", read_only=True)
    # A resource whose owner left the team belongs to the team: `owner` is null, `owned_by` says so.
    owner = serializers.CharField(source="owner.username", read_only=True, allow_null=True)
    owned_by = serializers.SerializerMethodField()
    namespace = serializers.CharField(source="namespace_name", read_only=True)
    cluster = serializers.CharField(source="cluster.name", read_only=True, help_text=CLUSTER_HELP)
    lease = serializers.SerializerMethodField()
    objects = serializers.SerializerMethodField()
    connection = serializers.SerializerMethodField()
    releases = serializers.SerializerMethodField()

    class Meta:
        model = Resource
        fields = [
            "id",
            "kind",
            "name",
            "display_name",
            "namespace",
            "team",
            "owner",
            "owned_by",
            "environment",
            "cluster",
            "state",
            "spec",
            "lease_days",
            "created_by_request",
            "created_at",
            "lease",
            "objects",
            "connection",
            "releases",
        ]
        read_only_fields = fields

    @extend_schema_field({"type": "string", "enum": ["user", "team"]})
    def get_owned_by(self, obj: Resource) -> str:
        return "user" if obj.owner_id is not None else "team"

    def _section(self, name: str, obj: Resource):
        render = resource_sections.get(name)
        return render(obj) if render else None

    @extend_schema_field(NULLABLE_OBJECT)
    def get_lease(self, obj: Resource):
        return self._section("lease", obj)

    @extend_schema_field({"type": "array", "items": {"type": "object"}})
    def get_objects(self, obj: Resource):
        return self._section("objects", obj) or []

    @extend_schema_field(NULLABLE_OBJECT)
    def get_connection(self, obj: Resource):
        return self._section("connection", obj)

    @extend_schema_field({"type": "array", "items": {"type": "object"}, "nullable": True})
    def get_releases(self, obj: Resource):
        return self._section("releases", obj)

    def to_representation(self, instance: Resource) -> dict[str, Any]:
        """Needs `team`, `owner`, `parent__team` and the sections' relations loaded (resources_visible_to)."""
        tz = timezone.get_current_timezone()
        section = resource_sections.get
        lease, objects, connection, releases = (
            section("lease"),
            section("objects"),
            section("connection"),
            section("releases"),
        )
        owner = instance.owner
        return {
            "id": str(instance.id),
            "kind": str(instance.kind),
            "name": str(instance.name),
            "display_name": instance.display_name,
            "namespace": str(instance.namespace_name),
            "team": str(instance.team.slug),
            "owner": str(owner.username) if owner is not None else None,
            "owned_by": "user" if instance.owner_id is not None else "team",
            "environment": str(instance.environment),
            "cluster": str(instance.cluster.name),
            "state": str(instance.state),
            "spec": instance.spec,
            "lease_days": int(instance.lease_days),
            "created_by_request": instance.created_by_request_id,
            "created_at": api_datetime(instance.created_at, tz),
            "lease": lease(instance) if lease else None,
            "objects": (objects(instance) if objects else None) or [],
            "connection": connection(instance) if connection else None,
            "releases": releases(instance) if releases else None,
        }
