from rest_framework import serializers

from leases.models import Lease


class LeaseSerializer(serializers.ModelSerializer):
    class Meta:
        model = Lease
        fields = ["state", "starts_at", "expires_at", "grace_until", "extensions", "reclaimed_at", "last_report"]


def lease_section(resource) -> dict | None:
    """The `lease` part of a resource's representation."""
    lease = Lease.objects.filter(resource=resource).first()
    return LeaseSerializer(lease).data if lease else None
