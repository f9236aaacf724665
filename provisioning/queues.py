"""One Celery queue per cluster, and the worker step that consumes the queues of the clusters it serves.

The work that calls a cluster (provisioning, extension, restores, the per-cluster reclamation pass and
drift repair) is published on `cluster.<name>`; everything else stays on Celery's default queue. A
cluster that is down or slow therefore fills only its own queue, and a worker can be started for one
cluster or for all (LEASEHOLD_WORKER_CLUSTERS: `*`, the default, or a comma-separated list of names).
A worker serving `*` starts consuming a newly registered cluster's queue within
LEASEHOLD_WORKER_QUEUE_REFRESH_SECONDS, without a restart.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import bootsteps

log = logging.getLogger(__name__)

PREFIX = "cluster."
DEFAULT_CLUSTER = "default"  # requests_app.models.DEFAULT_CLUSTER, without importing models here


def queue_name(cluster_name: str) -> str:
    """The queue of a cluster's work."""
    return f"{PREFIX}{cluster_name}"


def served_clusters(selection: str, registered: list[str]) -> list[str]:
    """The clusters a worker configured with `selection` serves, of those `registered` (pure). `*` always
    includes `default`: its work is published before its row exists on a fresh database."""
    wanted = {part.strip() for part in selection.split(",") if part.strip()}
    if "*" in wanted:
        return sorted({*registered, DEFAULT_CLUSTER})
    return sorted(wanted)


class ClusterQueues(bootsteps.StartStopStep):
    """A consumer step: consume the queues of the clusters this worker serves, at start and then every
    LEASEHOLD_WORKER_QUEUE_REFRESH_SECONDS (a cluster registered since is picked up; one removed stays
    consumed until the worker restarts, so nothing published to it is stranded)."""

    requires = {"celery.worker.consumer.tasks:Tasks"}

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self.timer_ref: Any = None

    def start(self, consumer: Any) -> None:
        from django.conf import settings

        self.refresh(consumer)
        self.timer_ref = consumer.timer.call_repeatedly(
            settings.LEASEHOLD_WORKER_QUEUE_REFRESH_SECONDS, self.refresh, (consumer,), priority=10
        )

    def stop(self, consumer: Any) -> None:
        if self.timer_ref is not None:
            self.timer_ref.cancel()
            self.timer_ref = None

    def refresh(self, consumer: Any) -> None:
        from django.conf import settings
        from django.db import DatabaseError, connection

        from requests_app.models import Cluster

        try:
            registered = list(Cluster.objects.values_list("name", flat=True))
        except DatabaseError:
            log.warning("could not read the registered clusters; consuming the queues known so far", exc_info=True)
            return
        finally:
            # The worker's main process keeps no database session between refreshes.
            connection.close()
        consuming = {queue.name for queue in consumer.task_consumer.queues}
        for name in served_clusters(settings.LEASEHOLD_WORKER_CLUSTERS, registered):
            queue = queue_name(name)
            if queue not in consuming:
                consumer.add_task_queue(queue)
                log.info("consuming %s", queue)
