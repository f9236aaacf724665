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

log = logging.getLogger(__name__)

# --- metrics and logs of the worker (README "Metrics and alerts") -------------------------------------------


@signals.worker_init.connect(dispatch_uid="leasehold.worker_metrics")
def serve_metrics(**kwargs: Any) -> None:
    """The worker's main process, before its pool starts: empty the multiprocess directory of an
    earlier run and serve /metrics on LEASEHOLD_METRICS_PORT."""
    from .metrics import serve_worker_metrics, wipe_multiprocess_dir

    wipe_multiprocess_dir()
    serve_worker_metrics()


@signals.worker_process_init.connect(dispatch_uid="leasehold.worker_child_socket")
def close_metrics_socket(**kwargs: Any) -> None:
    from .metrics import close_inherited_metrics_socket

    close_inherited_metrics_socket()


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
