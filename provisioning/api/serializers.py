from typing import Any

from rest_framework import serializers

from provisioning.models import ManagedObject


class ManagedObjectSerializer(serializers.ModelSerializer):
    class Meta:
        model = ManagedObject
        fields = ["api_version", "kind", "namespace", "name", "uid", "applied_at", "deleted_at"]


def objects_section(resource) -> Any:
    """The `objects` part of a resource's representation."""
    return ManagedObjectSerializer(resource.managed_objects.all(), many=True).data
