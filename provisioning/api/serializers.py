from typing import Any

from rest_framework import serializers

from provisioning.models import ManagedObject


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


# One serializer, built once: building its fields for every row of a list cost more than the row.
_OBJECT = ManagedObjectSerializer()


def objects_section(resource) -> Any:
    """The `objects` part of a resource's representation (prefetched for lists, see ProvisioningConfig)."""
    return [_OBJECT.to_representation(o) for o in resource.managed_objects.all()]
