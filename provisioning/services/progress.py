"""The progress read model: where a request's provisioning stands, for the pages and the API."""

from __future__ import annotations

from django.conf import settings

from requests_app.models import RequestState, ResourceRequest

from ..models import ManagedObject, Phase, ProvisioningJob
from .plan import PROVISIONED_ACTIONS, resource_id_for


def provisioning_progress(request: ResourceRequest) -> dict | None:
    """Where a create request's provisioning stands, step by step: for the request page and the API."""
    if request.action not in PROVISIONED_ACTIONS or request.state in (
        RequestState.PENDING_APPROVAL,
        RequestState.REJECTED,
        RequestState.CANCELLED,
    ):
        return None
    job = ProvisioningJob.objects.filter(pk=request.pk).first()
    rows = list(ManagedObject.objects.filter(resource_id=resource_id_for(request)).order_by("pk"))
    steps = []
    for row in rows:
        if row.deleted_at is not None:
            state = "removed"
        elif row.ready_at is not None:
            state = "ready"
        elif row.applied_at is not None:
            state = "applied"
        else:
            state = "pending"
        steps.append(
            {
                "object": str(row),
                "kind": row.kind,
                "state": state,
                "applied_at": row.applied_at,
                "ready_at": row.ready_at,
            }
        )
    return {
        "state": request.state,
        "live": request.state in (RequestState.APPROVED, RequestState.PROVISIONING),
        "phase": job.phase if job else Phase.QUEUED,
        "phase_display": (job.get_phase_display() if job else Phase.QUEUED.label),
        "attempts": request.deliveries,
        "max_attempts": settings.LEASEHOLD_MAX_DELIVERIES,
        "retry_at": job.retry_at if job else None,
        "note": job.last_error if job else "",
        "error": request.error,
        "steps": steps,
    }
