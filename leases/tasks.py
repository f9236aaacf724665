"""Celery entry points of the reclamation: the periodic pass, its per-cluster parts, and the follow-up."""

from celery import shared_task

from .passes import reclaim_pass_recorded
from .services.extension import extension_fulfil
from .services.reclaim_pass import reclaim_follow
from .services.restore import restore_start


@shared_task(acks_late=True, ignore_result=True)
def reclaim_leases() -> None:
    """The beat's reclamation pass: the work that needs no cluster (mail, notices, hand-overs) here, then
    one `reclaim_cluster` task per cluster with live leases, each on its cluster's queue, so that a
    cluster that is down or slow holds up none of the others (`manage.py reclaim_leases` does it all
    in one process)."""
    reclaim_pass_recorded(origin="task", fan_out=True)


@shared_task(acks_late=True, ignore_result=True)
def reclaim_cluster(name: str) -> None:
    """One cluster's part of a reclamation pass: grace, backups and reclamation of the leases on it."""
    reclaim_pass_recorded(origin="task", cluster=name)


@shared_task(acks_late=True, ignore_result=True)
def follow_reclaiming() -> None:
    """Mark reclaiming leases reclaimed once their objects are gone, cluster by cluster (see
    services.reclaim_pass.reclaim_follow)."""
    reclaim_follow()


@shared_task(acks_late=True, ignore_result=True)
def fulfil_extension(request_id: str) -> None:
    """Carry out an approved extension (idempotent; `reclaim_follow` sends it again if it was lost)."""
    extension_fulfil(request_id=request_id)


@shared_task(acks_late=True, ignore_result=True)
def start_restore(resource_id: str) -> None:
    """Fill a restored database from its dump (idempotent; `reclaim_follow` starts it if this was lost)."""
    restore_start(resource_id=resource_id)
