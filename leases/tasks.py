"""Celery entry point for the periodic reclamation pass."""

from celery import shared_task

from .passes import reclaim_pass_recorded
from .services.extension import extension_fulfil
from .services.reclaim_pass import reclaim_follow
from .services.restore import restore_start


@shared_task(acks_late=True, ignore_result=True)
def reclaim_leases() -> None:
    """One reclamation pass (the beat schedule runs it; `manage.py reclaim_leases` runs the same)."""
    reclaim_pass_recorded(origin="task")


@shared_task(acks_late=True, ignore_result=True)
def follow_reclaiming() -> None:
    """Mark reclaiming leases reclaimed once their objects are gone (see services.reclaim_pass.reclaim_follow)."""
    reclaim_follow()


@shared_task(acks_late=True, ignore_result=True)
def fulfil_extension(request_id: str) -> None:
    """Carry out an approved extension (idempotent; `reclaim_follow` sends it again if it was lost)."""
    extension_fulfil(request_id=request_id)


@shared_task(acks_late=True, ignore_result=True)
def start_restore(resource_id: str) -> None:
    """Fill a restored database from its dump (idempotent; `reclaim_follow` starts it if this was lost)."""
    restore_start(resource_id=resource_id)
