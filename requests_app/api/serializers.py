from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from django.utils import timezone
from drf_spectacular.utils import OpenApiExample, extend_schema_field
from rest_framework import serializers

from requests_app import kinds, specs
from requests_app.models import AuditEvent, Cluster, Environment, ResourceRequest
from requests_app.sections import request_pages, request_sections

# A section another app renders; null when it has nothing to say (no approval chain, no lease yet, not a database).
NULLABLE_OBJECT = {"type": "object", "additionalProperties": {}, "nullable": True}


# The representations below are built as plain dicts (`to_representation`), field by field in the order
# their `Meta.fields` give: DRF's generic walk over the declared fields (a `get_attribute` and a
# `to_representation` call per field, a timezone look-up per date) cost more than the database for a page
# of 100 requests. The declared fields stay: they are what the OpenAPI schema describes, and
# tests/api/test_list_rows.py proves that each dict is what DRF's generic walk gives, key for key.

_DATETIME = serializers.DateTimeField()


def api_datetime(value: datetime | None, tz: Any) -> str | None:
    """What DRF's DateTimeField gives (ISO 8601 in the current time zone, `Z` for UTC), without its
    per-call look-ups; `tz` is `timezone.get_current_timezone()`, read once per row."""
    if not value:
        return None
    if value.tzinfo is None:  # not from the database (it gives aware datetimes): DRF's own rules
        return _DATETIME.to_representation(value)
    text = value.astimezone(tz).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def event_row(event: AuditEvent, tz: Any) -> dict[str, Any]:
    return {
        "at": api_datetime(event.at, tz),
        "actor": event.actor_name or "system",
        "verb": str(event.verb),
        "detail": str(event.detail),
        "from_state": str(event.from_state),
        "to_state": str(event.to_state),
    }


class EventSerializer(serializers.ModelSerializer):
    actor = serializers.SerializerMethodField()

    class Meta:
        model = AuditEvent
        fields = ["at", "actor", "verb", "detail", "from_state", "to_state"]

    def get_actor(self, obj: AuditEvent) -> str:
        return obj.actor_name or "system"

    def to_representation(self, instance: AuditEvent) -> dict[str, Any]:
        return event_row(instance, timezone.get_current_timezone())


CLUSTER_HELP = "The name of the cluster it is placed on (GET /api/v1/clusters/; CONTRACT.md §6)."


class RequestSummarySerializer(serializers.ModelSerializer):
    """A request's own fields, for lists that show requests beside something else (the approval queue)."""

    team = serializers.CharField(source="team.slug", read_only=True)
    requester = serializers.CharField(source="requester.username", read_only=True)
    cluster = serializers.CharField(source="cluster.name", read_only=True, help_text=CLUSTER_HELP)

    class Meta:
        model = ResourceRequest
        fields = [
            "id",
            "action",
            "kind",
            "team",
            "name",
            "environment",
            "cluster",
            "lease_days",
            "justification",
            "spec",
            "state",
            "requester",
            "created_at",
        ]
        read_only_fields = fields


class RequestRowsSerializer(serializers.ListSerializer):
    """Many requests (a page): their events are read in one query for all of them, as plain rows, in
    the trail's order, instead of a model, a related manager and a queryset per row (`prefetch_related`)."""

    def to_representation(self, data: Any) -> list[dict[str, Any]]:
        rows = list(data.all() if hasattr(data, "all") else data)
        attach_event_rows(rows)
        for attach in request_pages:
            attach(rows)
        return super().to_representation(rows)


def attach_event_rows(requests: list[ResourceRequest]) -> None:
    """Set `listed_event_rows` on each request: its audit events as the API shows them, oldest first."""
    if not requests:
        return
    tz = timezone.get_current_timezone()
    by_request: dict[Any, list[dict[str, Any]]] = {r.pk: [] for r in requests}
    events = (
        AuditEvent.objects.filter(request_id__in=list(by_request))
        .order_by("at", "id")
        .values_list("request_id", "at", "actor_name", "verb", "detail", "from_state", "to_state")
    )
    for request_id, at, actor_name, verb, detail, from_state, to_state in events:
        by_request[request_id].append(
            {
                "at": api_datetime(at, tz),
                "actor": actor_name or "system",
                "verb": verb,
                "detail": detail,
                "from_state": from_state,
                "to_state": to_state,
            }
        )
    for request in requests:
        request.listed_event_rows = by_request[request.pk]  # type: ignore[attr-defined]


DISPLAY_NAME_HELP = "`<namespace>` for a namespace, `<namespace> / <name>` for what lives in one (CONTRACT.md §6)."


class RequestSerializer(RequestSummarySerializer):
    display_name = serializers.CharField(read_only=True, help_text=DISPLAY_NAME_HELP)
    error = serializers.SerializerMethodField()
    approval = serializers.SerializerMethodField()
    events = EventSerializer(many=True, read_only=True)

    class Meta(RequestSummarySerializer.Meta):
        fields = [
            *RequestSummarySerializer.Meta.fields,
            "display_name",
            "updated_at",
            "resource",
            "error",
            "approval",
            "events",
        ]
        read_only_fields = fields
        list_serializer_class = RequestRowsSerializer

    def get_error(self, obj: ResourceRequest) -> str | None:
        return obj.error or None

    @extend_schema_field(NULLABLE_OBJECT)
    def get_approval(self, obj: ResourceRequest):
        render = request_sections.get("approval")
        return render(obj) if render else None

    def to_representation(self, instance: ResourceRequest) -> dict[str, Any]:
        """Needs `team`, `requester`, `parent__team` selected (see requests_visible_to) and the events
        set by RequestRowsSerializer (`listed_event_rows`) or read here."""
        tz = timezone.get_current_timezone()
        events = getattr(instance, "listed_event_rows", None)
        if events is None:
            events = [event_row(e, tz) for e in instance.events.all()]
        render_approval = request_sections.get("approval")
        return {
            "id": str(instance.id),
            "action": str(instance.action),
            "kind": str(instance.kind),
            "team": str(instance.team.slug),
            "name": str(instance.name),
            "environment": str(instance.environment),
            "cluster": str(instance.cluster.name),
            "lease_days": int(instance.lease_days),
            "justification": str(instance.justification),
            "spec": instance.spec,
            "state": str(instance.state),
            "requester": str(instance.requester.username),
            "created_at": api_datetime(instance.created_at, tz),
            "display_name": instance.display_name,
            "updated_at": api_datetime(instance.updated_at, tz),
            "resource": instance.resource_id,
            "error": instance.error or None,
            "approval": render_approval(instance) if render_approval else None,
            "events": events,
        }


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

    kind = serializers.ChoiceField(choices=[])
    team = serializers.CharField(max_length=40)
    name = serializers.CharField(max_length=63, allow_blank=False)
    environment = serializers.ChoiceField(choices=Environment.choices)
    lease_days = serializers.IntegerField(required=False, min_value=1)
    justification = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)
    spec = serializers.JSONField(required=False, default=dict)
    cluster = serializers.CharField(
        required=False,
        max_length=40,
        help_text="A namespace: the cluster to place it on (without it, placement chooses); a database, app "
        "or cache goes to its namespace's cluster.",
    )

    def get_fields(self):
        fields = super().get_fields()
        fields["kind"].choices = kinds.choices()  # the registry's, read when a body is (not at import)
        return fields

    def validate_spec(self, value):
        if not isinstance(value, dict):
            raise serializers.ValidationError("Must be an object.")
        return value


QUANTITIES_SCHEMA = {
    "type": "object",
    "properties": {key: {"type": "string", "nullable": True} for key in ("cpu", "memory", "storage")},
    "required": ["cpu", "memory", "storage"],
}


def api_quantity(value: Decimal | None, key: str) -> str | None:
    """A quantity as the API gives it: CPU in cores ("12.5"), memory and storage in Gi ("64Gi"); None: no limit."""
    return None if value is None else specs.format_quantity(value, key)


class ClusterSerializer(serializers.Serializer):
    """A cluster one may place a namespace on (CONTRACT.md §6). Never its API server or credentials."""

    name = serializers.CharField()
    environments = serializers.ListField(child=serializers.ChoiceField(choices=Environment.choices))
    region = serializers.CharField()
    accepting = serializers.BooleanField()
    capacity = serializers.SerializerMethodField(help_text="Allocatable × overcommit; null: no limit.")
    committed = serializers.SerializerMethodField(help_text="The quota of its live namespaces and those on their way.")
    healthy = serializers.BooleanField(
        allow_null=True,
        help_text="Whether its API server answered the last health check (every LEASEHOLD_CLUSTER_CHECK_SECONDS); "
        "null until the first check.",
    )
    health_checked_at = serializers.DateTimeField(allow_null=True, help_text="When the last health check ran.")
    unhealthy_since = serializers.DateTimeField(
        allow_null=True, help_text="Since when it has not answered; null while it is healthy (or not checked yet)."
    )

    @extend_schema_field(QUANTITIES_SCHEMA)
    def get_capacity(self, obj: Cluster) -> dict[str, str | None]:
        return {key: api_quantity(value, key) for key, value in obj.capacity().items()}

    @extend_schema_field(QUANTITIES_SCHEMA)
    def get_committed(self, obj: Cluster) -> dict[str, str | None]:
        committed = self.context["committed"][obj.pk]
        return {key: api_quantity(getattr(committed, key), key) for key in ("cpu", "memory", "storage")}
