from typing import Any

from django.utils import timezone
from rest_framework import serializers

from provisioning.models import ManagedObject
from provisioning.selectors import objects_of
from requests_app.api.serializers import api_datetime


class ManagedObjectSerializer(serializers.ModelSerializer):
    """One recorded object; `drift` is the last difference from the cluster the reconciler found."""

    class Meta:
        model = ManagedObject
        fields = [
            "api_version",
            "kind",
            "namespace",
            "name",
            "uid",
            "applied_at",
            "ready_at",
            "deleted_at",
            "drift",
            "drift_at",
        ]


class ProgressStepSerializer(serializers.Serializer):
    object = serializers.CharField()
    kind = serializers.CharField()
    state = serializers.ChoiceField(choices=["pending", "applied", "ready", "removed"])
    applied_at = serializers.DateTimeField(allow_null=True)
    ready_at = serializers.DateTimeField(allow_null=True)


class ProgressSerializer(serializers.Serializer):
    """Where a create request's provisioning stands, step by step."""

    state = serializers.CharField()
    live = serializers.BooleanField(help_text="True while the request is approved or provisioning.")
    phase = serializers.CharField()
    phase_display = serializers.CharField()
    attempts = serializers.IntegerField()
    max_attempts = serializers.IntegerField()
    retry_at = serializers.DateTimeField(allow_null=True)
    note = serializers.CharField(help_text="The last transient error, or what readiness is waiting for.")
    error = serializers.CharField(help_text="Why the request failed.")
    steps = ProgressStepSerializer(many=True)


def object_row(o: ManagedObject, tz: Any) -> dict[str, Any]:
    """ManagedObjectSerializer's representation, built directly (tests/api/test_list_rows.py compares them)."""
    return {
        "api_version": str(o.api_version),
        "kind": str(o.kind),
        "namespace": str(o.namespace),
        "name": str(o.name),
        "uid": str(o.uid),
        "applied_at": api_datetime(o.applied_at, tz),
        "ready_at": api_datetime(o.ready_at, tz),
        "deleted_at": api_datetime(o.deleted_at, tz),
        "drift": str(o.drift),
        "drift_at": api_datetime(o.drift_at, tz),
    }


def objects_section(resource) -> Any:
    """The `objects` part of a resource's representation."""
    objects = objects_of(resource)
    tz = timezone.get_current_timezone()
    return [object_row(o, tz) for o in objects]
