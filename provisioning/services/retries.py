"""The retry policy of provisioning, and failing a request that cannot finish."""

from __future__ import annotations

import logging
import random
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from requests_app.models import Action, RequestState, ResourceRequest, ResourceState
from requests_app.services import audit_record, transition_apply

from ..errors import ClusterError
from ..models import Phase, ProvisioningJob
from .teardown import resource_teardown

log = logging.getLogger(__name__)


def retry_delay(attempt: int, retry_after: float | None = None) -> float:
    """Exponential backoff with jitter for the `attempt`-th retry (from 1), at least `Retry-After`,
    at most LEASEHOLD_RETRY_BACKOFF_MAX_SECONDS."""
    base = settings.LEASEHOLD_RETRY_BACKOFF_SECONDS * (2 ** max(0, attempt - 1))
    jittered = base * random.uniform(0.5, 1.0)  # noqa: S311 (jitter, not cryptography)
    return min(settings.LEASEHOLD_RETRY_BACKOFF_MAX_SECONDS, max(jittered, retry_after or 0))


def provisioning_retry_later(*, request_id, error: Exception) -> float | None:
    """After a transient failure: the seconds until the next attempt (recorded, so the sweep leaves the
    request alone meanwhile), or None when the attempts are used up and the request was failed."""
    reason = str(error) or error.__class__.__name__
    with transaction.atomic():
        request = ResourceRequest.objects.select_for_update().get(pk=request_id)
        if request.state not in (RequestState.APPROVED, RequestState.PROVISIONING):
            return None
        exhausted = request.deliveries >= settings.LEASEHOLD_MAX_DELIVERIES
        if not exhausted:
            delay = retry_delay(request.deliveries, getattr(error, "retry_after", None))
            now = timezone.now()
            ProvisioningJob.objects.update_or_create(
                request=request,
                defaults={
                    "phase": Phase.RETRYING,
                    "retry_at": now + timedelta(seconds=delay),
                    "enqueued_at": now,
                    "last_error": reason,
                },
            )
            audit_record(actor=None, verb="retry_scheduled", target=request, detail=f"in {delay:.1f}s after: {reason}")
            return delay
    request_fail(
        request_id=request_id,
        reason=f"Gave up after {request.deliveries} attempts; the last error was: {reason}",
    )
    return None


def request_fail(*, request_id, reason: str) -> None:
    """Mark a request (and its resource) failed with the reason, and remove what was applied."""
    with transaction.atomic():
        request = ResourceRequest.objects.select_for_update().get(pk=request_id)
        if request.state not in (RequestState.APPROVED, RequestState.PROVISIONING):
            return
        resource = request.resource
        transition_apply(request, "fail", actor=None, verb="failed", detail=reason, reason=reason)
        if resource is not None and resource.state == ResourceState.PROVISIONING:
            transition_apply(resource, "fail", actor=None, verb="failed", detail=reason, request=request)
        ProvisioningJob.objects.update_or_create(
            request=request,
            defaults={
                "phase": Phase.FAILED,
                "last_error": reason,
                "claim_token": None,
                "claimed_until": None,
                "claimed_by": "",
            },
        )
    # A failed upgrade or rollback leaves the running app alone (retry it, or roll back).
    if resource is not None and request.action == Action.CREATE:
        try:
            resource_teardown(resource=resource)
        except ClusterError:
            # The periodic reconcile finishes the teardown of failed resources.
            log.exception("could not remove the objects of failed resource %s yet", resource.pk)
