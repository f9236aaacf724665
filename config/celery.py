"""The Celery application. Settings come from Django settings under the CELERY_ namespace."""

from __future__ import annotations

import inspect
import logging
import os
from contextvars import ContextVar, Token
from typing import Any

from celery import Celery, signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("leasehold")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


def _add_cluster_queues(app: Celery) -> None:
    """A worker also consumes the queues of the clusters it serves (provisioning/queues.py)."""
    from provisioning.queues import ClusterQueues

    app.steps["consumer"].add(ClusterQueues)


_add_cluster_queues(app)

log = logging.getLogger(__name__)


def celery_schedule(jobs: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """CELERY_BEAT_SCHEDULE as beat takes it: the settings write a crontab as plain data,
    `{"crontab": {...}}` (see config/settings.py), here a `celery.schedules.crontab`."""
    from celery.schedules import crontab

    def schedule(value: Any) -> Any:
        return crontab(**value["crontab"]) if isinstance(value, dict) else value

    return {name: {**job, "schedule": schedule(job["schedule"])} for name, job in jobs.items()}


@app.on_after_configure.connect(weak=False)
def convert_beat_schedule(sender: Celery, **kwargs: Any) -> None:
    """Once the configuration is read from the settings, before beat (or anything) reads the schedule."""
    sender.conf.beat_schedule = celery_schedule(sender.conf.beat_schedule)


# --- metrics and logs of the worker (README "Metrics and alerts") -------------------------------------------


# --- database connections of the worker ----------------------------------------------------------------
# A pool process runs one task after another on one thread: it keeps its PostgreSQL session between
# tasks instead of opening one per task. Celery's Django fixup would close every connection before and
# after each task; with CELERY_DB_REUSE_MAX set (config/settings.py) it leaves them open, and the two
# receivers below close them the way Django does between requests: one that is unusable, saw an error,
# was left inside a transaction or is older than LEASEHOLD_WORKER_CONN_MAX_AGE; CONN_HEALTH_CHECKS
# checks a kept one before its first use in a task. The fixup still closes the connections a pool
# process inherited from its parent.


@signals.worker_init.connect(dispatch_uid="leasehold.worker_connections")
def keep_worker_connections(**kwargs: Any) -> None:
    """The worker's main process, before its pool forks: connections live LEASEHOLD_WORKER_CONN_MAX_AGE."""
    from django.conf import settings
    from django.db import connections

    for alias in connections:
        connections.settings[alias]["CONN_MAX_AGE"] = settings.LEASEHOLD_WORKER_CONN_MAX_AGE


def close_old_connections_around_task(sender: Any = None, **kwargs: Any) -> None:
    """Before and after each task: close the connections that must not be used again (see above). Not
    for a task run eagerly: it runs inside its caller, whose connection (and transaction) it shares."""
    if getattr(getattr(sender, "request", None), "is_eager", False):
        return
    from django.db import close_old_connections

    close_old_connections()


signals.task_prerun.connect(close_old_connections_around_task, dispatch_uid="leasehold.db_before_task", weak=False)
signals.task_postrun.connect(close_old_connections_around_task, dispatch_uid="leasehold.db_after_task", weak=False)


@signals.worker_init.connect(dispatch_uid="leasehold.worker_metrics")
def serve_metrics(**kwargs: Any) -> None:
    """The worker's main process, before its pool starts: empty the multiprocess directory of an
    earlier run and serve /metrics on LEASEHOLD_METRICS_PORT."""
    from .metrics import serve_worker_metrics, wipe_multiprocess_dir

    wipe_multiprocess_dir()
    serve_worker_metrics()


@signals.worker_init.connect(dispatch_uid="leasehold.worker_freeze")
def freeze_loaded_before_fork(**kwargs: Any) -> None:
    """The worker's main process, its tasks imported, before the pool forks: freeze what it loaded; the
    pool's processes inherit it frozen (config/startup.py)."""
    from .startup import freeze_loaded

    freeze_loaded()


@signals.worker_process_init.connect(dispatch_uid="leasehold.worker_child_socket")
def close_metrics_socket(**kwargs: Any) -> None:
    from .metrics import close_inherited_metrics_socket

    close_inherited_metrics_socket()


@signals.worker_process_init.connect(dispatch_uid="leasehold.worker_child_freeze")
def freeze_inherited(**kwargs: Any) -> None:
    """A pool process, just forked: freeze what it inherited and the parent loaded after its own freeze
    (the Kubernetes client, by a later worker_init receiver), without a collection (config/startup.py)."""
    from .startup import freeze_loaded

    freeze_loaded(collect=False)


@signals.worker_process_shutdown.connect(dispatch_uid="leasehold.worker_child_metrics")
def forget_child_metrics(pid: int | None = None, **kwargs: Any) -> None:
    """A pool process ends: its live gauges go (its counters stay in the sums)."""
    from .metrics import mark_process_dead

    mark_process_dead(pid or os.getpid())


_log_context: dict[str, list[tuple[ContextVar[str], Token[str]]]] = {}


@signals.task_prerun.connect(dispatch_uid="leasehold.task_log_context")
def bind_task_log_context(task_id: str, task: Any, args: tuple = (), kwargs: dict | None = None, **_: Any) -> None:
    """Every line a task logs carries its id as request_id, and the request or resource it works on
    (its `request_id` or `resource_id` argument)."""
    from requests_app import logs

    try:
        named = inspect.signature(task.run).bind_partial(*args, **(kwargs or {})).arguments
    except TypeError:
        named = {}
    values = {"request_id": task_id, "actor": "", "resource_id": "", "resource_request_id": ""}
    if named.get("request_id"):
        values["resource_request_id"] = str(named["request_id"])
    if named.get("resource_id"):
        values["resource_id"] = str(named["resource_id"])
    _log_context[task_id] = [(var, var.set(values[name])) for name, var in logs.context_vars().items()]


@signals.task_postrun.connect(dispatch_uid="leasehold.task_log_context_end")
def unbind_task_log_context(task_id: str, **_: Any) -> None:
    for var, token in reversed(_log_context.pop(task_id, [])):
        var.reset(token)


@signals.task_success.connect(dispatch_uid="leasehold.periodic_heartbeat")
def record_heartbeat(sender: Any = None, **kwargs: Any) -> None:
    """A periodic job (CELERY_BEAT_SCHEDULE) finished: note it, for the alert on the beat schedule."""
    from django.conf import settings
    from django.db import DatabaseError

    from requests_app.services import heartbeat_record

    name = getattr(sender, "name", "")
    if name not in {job["task"] for job in settings.CELERY_BEAT_SCHEDULE.values()}:
        return
    try:
        heartbeat_record(task=name)
    except DatabaseError:
        log.warning("could not record that %s ran", name, exc_info=True)
