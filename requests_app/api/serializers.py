from __future__ import annotations

from drf_spectacular.utils import OpenApiExample, extend_schema_field
from rest_framework import serializers

from requests_app.models import AuditEvent, Environment, Kind, Resource, ResourceRequest
from requests_app.sections import request_sections, resource_sections

# A section another app renders; null when it has nothing to say (no approval chain, no lease yet, not a database).
NULLABLE_OBJECT = {"type": "object", "additionalProperties": {}, "nullable": True}


class EventSerializer(serializers.ModelSerializer):
    actor = serializers.SerializerMethodField()

    class Meta:
        model = AuditEvent
        fields = ["at", "actor", "verb", "detail", "from_state", "to_state"]

    def get_actor(self, obj: AuditEvent) -> str:
        return obj.actor_name or "system"


class RequestSummarySerializer(serializers.ModelSerializer):
    """A request's own fields, for lists that show requests beside something else (the approval queue)."""

    team = serializers.CharField(source="team.slug", read_only=True)
    requester = serializers.CharField(source="requester.username", read_only=True)

    class Meta:
        model = ResourceRequest
        fields = [
            "id",
            "action",
            "kind",
            "team",
            "name",
            "environment",
            "lease_days",
            "justification",
            "spec",
            "state",
            "requester",
            "created_at",
        ]
        read_only_fields = fields


class RequestSerializer(RequestSummarySerializer):
    error = serializers.SerializerMethodField()
    approval = serializers.SerializerMethodField()
    events = EventSerializer(many=True, read_only=True)

    class Meta(RequestSummarySerializer.Meta):
        fields = [*RequestSummarySerializer.Meta.fields, "updated_at", "resource", "error", "approval", "events"]
        read_only_fields = fields

    def get_error(self, obj: ResourceRequest) -> str | None:
        return obj.error or None

    @extend_schema_field(NULLABLE_OBJECT)
    def get_approval(self, obj: ResourceRequest):
        render = request_sections.get("approval")
        return render(obj) if render else None


# The body of CONTRACT.md §3, shown in /api/docs/ (and sent as it is by tests/api/test_schemathesis.py).
REQUEST_BODY_EXAMPLE = OpenApiExample(
    "A small namespace",
    value={
        "kind": "namespace",
        "team": "atlas",
        "name": "checkout",
        "environment": "dev",
        "lease_days": 14,
        "justification": "load tests for checkout v2",
        "spec": {"plan": "small"},
    },
    request_only=True,
)


class RequestCreateSerializer(serializers.Serializer):
    """The body of `POST /api/v1/requests/` and `POST /api/v1/plan/` (types only; the service checks the rest)."""

    kind = serializers.ChoiceField(choices=Kind.choices)
    team = serializers.CharField(max_length=40)
    name = serializers.CharField(max_length=63, allow_blank=False)
    environment = serializers.ChoiceField(choices=Environment.choices)
    lease_days = serializers.IntegerField(required=False, min_value=1)
    justification = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)
    spec = serializers.JSONField(required=False, default=dict)

    def validate_spec(self, value):
        if not isinstance(value, dict):
            raise serializers.ValidationError("Must be an object.")
        return value


class ResourceSerializer(serializers.ModelSerializer):
    team = serializers.CharField(source="team.slug", read_only=True)
    # A resource whose owner left the team belongs to the team: `owner` is null, `owned_by` says so.
    owner = serializers.CharField(source="owner.username", read_only=True, allow_null=True)
    owned_by = serializers.SerializerMethodField()
    namespace = serializers.CharField(source="namespace_name", read_only=True)
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
            "namespace",
            "team",
            "owner",
            "owned_by",
            "environment",
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
