"""The Celery entry point of the clusters' health check (beat runs it every LEASEHOLD_CLUSTER_CHECK_SECONDS,
on the default queue: it must run while any one cluster's queue is stuck behind that cluster's outage).

A module of its own beside tasks.py; config/celery.py discovers it by name."""

from __future__ import annotations

from celery import shared_task

from .services.health import clusters_check


@shared_task(acks_late=True)
def check_clusters() -> dict:
    """Check every registered cluster and record its health (services.health.clusters_check)."""
    results = clusters_check()
    return {"checked": len(results), "unhealthy": [r.name for r in results if not r.healthy]}
