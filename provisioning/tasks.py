"""Celery entry points for provisioning: take ids, call one service."""

from __future__ import annotations

from celery import Task, shared_task
from celery.utils.time import get_exponential_backoff_interval

from . import services
from .errors import PermanentClusterError, TransientClusterError

MAX_RETRIES = 8


class ProvisionTask(Task):
    """Records the reason on the request when the task gives up (retries exhausted, or a crash)."""

    def on_failure(self, exc, task_id, args, kwargs, einfo) -> None:
        request_id = kwargs.get("request_id") or (args[0] if args else None)
        if request_id:
            services.request_fail(request_id=request_id, reason=f"{exc.__class__.__name__}: {exc}")


@shared_task(bind=True, base=ProvisionTask, acks_late=True, max_retries=MAX_RETRIES)
def provision_request(self, request_id: str) -> None:
    """Create an approved request's objects in Kubernetes; transient API errors retry with backoff."""
    try:
        services.request_provision(request_id=request_id)
    except TransientClusterError as exc:
        backoff = get_exponential_backoff_interval(
            factor=2, retries=self.request.retries, maximum=300, full_jitter=True
        )
        raise self.retry(exc=exc, countdown=max(backoff, exc.retry_after or 0)) from exc
    except PermanentClusterError as exc:
        services.request_fail(request_id=request_id, reason=str(exc))
