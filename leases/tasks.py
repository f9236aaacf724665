"""Celery entry point for the periodic reclamation pass."""

from celery import shared_task

from .services import reclaim_pass


@shared_task(acks_late=True, ignore_result=True)
def reclaim_leases() -> None:
    """One reclamation pass (the beat schedule runs it; `manage.py reclaim_leases` runs the same)."""
    reclaim_pass()
