from rest_framework import serializers

from leases.models import Lease


class LeaseSerializer(serializers.ModelSerializer):
    class Meta:
        model = Lease
        fields = ["state", "starts_at", "expires_at", "grace_until", "extensions", "reclaimed_at", "last_report"]


# One serializer, built once: building its fields for every row of a list cost more than the row.
_LEASE = LeaseSerializer()


def lease_section(resource) -> dict | None:
    """The `lease` part of a resource's representation."""
    try:
        lease = resource.lease  # selected with the list (see LeasesConfig.ready)
    except Lease.DoesNotExist:
        return None
    return _LEASE.to_representation(lease)
