"""Gunicorn, the production web server: `gunicorn -c config/gunicorn.py` (the image, `make serve`).

Every value can be changed by an environment variable; the defaults fit a pod of 2 CPUs behind an
Ingress (deploy/). The timeouts nest: a request that hangs is ended by gunicorn (`GUNICORN_TIMEOUT`,
30 s) before the Ingress gives up on it (`proxy-read-timeout`, 60 s in deploy/) and before the
liveness probe would restart the whole pod (6 failures 10 s apart); a stopping pod finishes its
requests within `GUNICORN_GRACEFUL_TIMEOUT` (25 s), inside Kubernetes' 30 s grace period.
"""

from __future__ import annotations

import importlib
import os
from typing import Any


def _int(name: str, default: int) -> int:
    return int(os.environ.get(name, "") or default)


# Every address of the container (in a pod: the pod's own, behind its NetworkPolicy); `make serve` binds loopback.
_host = os.environ.get("GUNICORN_HOST", "0.0.0.0")  # noqa: S104  # nosec B104
bind = [f"{_host}:{_int('PORT', 8000)}"]
# The metrics listener (README "Metrics and alerts"): /metrics answers there only, and nothing else does;
# the Service the Ingress routes to never exposes it. 0 turns it off.
_metrics_port = _int("LEASEHOLD_METRICS_PORT", 9100)
if _metrics_port:
    bind.append(f"{_host}:{_metrics_port}")
wsgi_app = "config.wsgi:application"

# Threads: a request mostly waits on PostgreSQL, LDAP or the API server, so each process serves several
# at once. Two processes per 2-CPU pod, four threads each; more pods scale further (deploy/, README).
worker_class = "gthread"
workers = _int("GUNICORN_WORKERS", 2)
threads = _int("GUNICORN_THREADS", 4)

timeout = _int("GUNICORN_TIMEOUT", 30)
graceful_timeout = _int("GUNICORN_GRACEFUL_TIMEOUT", 25)
# Longer than the ingress controller's idle upstream connections (ingress-nginx: 60 s), so the proxy
# closes an idle connection before gunicorn does and never sends a request into a closing socket.
keepalive = _int("GUNICORN_KEEPALIVE", 65)

# A process is replaced after this many requests (spread by the jitter so that they do not all restart
# at once): whatever memory a request leaked or fragmented goes with it.
max_requests = _int("GUNICORN_MAX_REQUESTS", 1000)
max_requests_jitter = _int("GUNICORN_MAX_REQUESTS_JITTER", 100)

# Behind the Ingress: gunicorn sets the request's scheme from X-Forwarded-Proto only when the peer is
# one of these addresses. deploy/ sets `*`: its NetworkPolicy admits only the ingress controller (and
# Prometheus, on the metrics port) to the pod. Django reads the same header itself
# (SECURE_PROXY_SSL_HEADER) and the client address from X-Forwarded-For (LEASEHOLD_PROXY_COUNT).
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")
secure_scheme_headers = {"X-FORWARDED-PROTO": "https"}

# Logs to the container's output, one access line per request (with its duration in microseconds).
accesslog = "-"
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")
access_log_format = '%(h)s "%({x-forwarded-for}i)s" "%(r)s" %(s)s %(b)s %(D)sus "%(a)s"'
# The heartbeat files of the workers: /tmp is a memory-backed emptyDir in deploy/ (the root filesystem
# is read-only), so a slow disk never makes a healthy worker look stuck.
worker_tmp_dir = os.environ.get("GUNICORN_WORKER_TMP_DIR") or None
# Each worker imports the application itself: a replaced worker (max_requests) starts with fresh
# database and Redis connections, never ones inherited from the master.
preload_app = False
# Gunicorn's control socket would live under $HOME: the root filesystem is read-only and nothing uses it.
control_socket_disable = True


def on_starting(server: Any) -> None:
    """The master starts: forget the metrics files of processes from before (config/metrics_hooks.py)."""
    importlib.import_module("config.metrics_hooks").on_starting(server)


def post_worker_init(worker: Any) -> None:
    """A worker process has loaded the application (config/wsgi.py imports the API as it starts): freeze
    what it loaded, so that no full garbage collection walks it again during a request (config/startup.py)."""
    importlib.import_module("config.startup").freeze_loaded()


def child_exit(server: Any, worker: Any) -> None:
    """A worker process ended: drop its live gauges from the metrics sums."""
    importlib.import_module("config.metrics_hooks").child_exit(server, worker)
