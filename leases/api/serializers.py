from django.utils import timezone
from rest_framework import serializers

from leases.models import LEASE_SECTION_FIELDS, Lease
from requests_app.api.serializers import api_datetime


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
