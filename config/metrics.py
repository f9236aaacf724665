"""`GET /metrics` (CONTRACT.md §6): who serves it, to whom, and what it holds (README "Metrics and alerts").

- Web: gunicorn listens on LEASEHOLD_METRICS_PORT (9100) besides the web port, and `MetricsMiddleware`
  answers /metrics there, and nothing else: the Ingress routes to the web port only, where /metrics is a
  404. The port is that of the socket the request came in on (WSGI's SERVER_PORT), which no header can
  change. With the development server (DEBUG), /metrics also answers on the web port to a client on
  loopback that came through no proxy.
- Celery worker: its main process serves the same port itself (`serve_worker_metrics`, from the
  worker_init signal in config/celery.py), before it starts its pool.
- What: the counters and histograms of every process of the pod — with PROMETHEUS_MULTIPROC_DIR, read
  from the files prometheus-client's multiprocess mode keeps there — and, on the web, the state read
  from the database (`DatabaseCollector`), the same on every replica.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path

from django.conf import settings
from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse, HttpResponseNotFound
from prometheus_client import REGISTRY, CollectorRegistry, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.multiprocess import MultiProcessCollector

log = logging.getLogger(__name__)

LOOPBACK = ("127.0.0.1", "::1")
# A request that carries one of these came through a proxy: it is not a local client's.
PROXY_HEADERS = ("HTTP_X_FORWARDED_FOR", "HTTP_FORWARDED", "HTTP_X_REAL_IP")


def multiprocess_dir() -> str:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")


class _ProcessCollector:
    """This process's own metrics (the default registry), when there is no multiprocess directory."""

    def collect(self) -> Iterator[Metric]:
        yield from REGISTRY.collect()


class DatabaseCollector:
    """The state-like figures, read from the database at scrape time by each app's collector. A
    database that does not answer leaves them out and says so in `leasehold_metrics_database_up`."""

    def collect(self) -> Iterator[Metric]:
        from approvals.metrics import ApprovalQueueCollector
        from leases.metrics import LeasesCollector
        from provisioning.metrics import ClustersCollector
        from requests_app.metrics import RequestsCollector

        up = 1
        for collector in (RequestsCollector(), ApprovalQueueCollector(), LeasesCollector(), ClustersCollector()):
            try:
                families = list(collector.collect())
            except DatabaseError:
                log.warning("metrics: the database did not answer %s", type(collector).__name__, exc_info=True)
                up = 0
                continue
            yield from families
        yield GaugeMetricFamily(
            "leasehold_metrics_database_up", "1 if the database answered the metrics' queries.", value=up
        )


def process_registry() -> CollectorRegistry:
    """A registry of the counters and histograms of every process sharing PROMETHEUS_MULTIPROC_DIR (or
    of this process alone, without one)."""
    registry = CollectorRegistry()
    if multiprocess_dir():
        MultiProcessCollector(registry)
    else:
        registry.register(_ProcessCollector())
    return registry


def metrics_response(request: HttpRequest) -> HttpResponse:
    """The metrics in the text format the scraper asked for (Prometheus text 0.0.4 by default, or
    OpenMetrics), as prometheus-client's own server answers."""
    registry = process_registry()
    registry.register(DatabaseCollector())
    encode, content_type = choose_encoder(request.headers.get("Accept", ""))
    return HttpResponse(encode(registry), content_type=content_type)


def on_metrics_port(request: HttpRequest) -> bool:
    port = settings.LEASEHOLD_METRICS_PORT
    return bool(port) and request.META.get("SERVER_PORT") == str(port)


def local_development_client(request: HttpRequest) -> bool:
    """The development server's own user: DEBUG, a loopback peer, and no proxy in between."""
    return (
        settings.DEBUG
        and request.META.get("REMOTE_ADDR") in LOOPBACK
        and not any(request.META.get(h) for h in PROXY_HEADERS)
    )


class MetricsMiddleware:
    """Serves /metrics on the metrics port (and only /metrics there); on the web port only to the
    development server's local user. Before the host check: Prometheus names the pod by its address."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if on_metrics_port(request):
            if request.path != "/metrics" or request.method not in ("GET", "HEAD"):
                return HttpResponseNotFound(b"Only GET /metrics is served on this port.\n", content_type="text/plain")
            return metrics_response(request)
        if request.path == "/metrics" and request.method in ("GET", "HEAD") and local_development_client(request):
            return metrics_response(request)
        # Anyone else, among them everything the Ingress sends: no such page (there is no URL for it).
        return self.get_response(request)


# --- processes ---------------------------------------------------------------------------------------


def wipe_multiprocess_dir() -> None:
    """Remove the files of processes from before a restart (prometheus-client's advice: the directory
    must be emptied when the server starts). Called by the process that starts the others."""
    path = multiprocess_dir()
    if not path:
        return
    for file in Path(path).glob("*.db"):
        file.unlink(missing_ok=True)


def mark_process_dead(pid: int) -> None:
    """Drop a finished process's live gauges from the multiprocess directory (its counters stay)."""
    if multiprocess_dir():
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)


_worker_server: list = []


def serve_worker_metrics() -> None:
    """Serve this Celery worker's metrics (all its pool processes) on LEASEHOLD_METRICS_PORT, from a
    thread of its main process. A port in use is logged, not fatal: the worker's work matters more."""
    port = settings.LEASEHOLD_METRICS_PORT
    if not port:
        return
    try:
        server, _ = start_http_server(port, addr=settings.LEASEHOLD_METRICS_ADDRESS, registry=process_registry())
    except OSError:
        log.warning("could not serve the worker's metrics on port %s", port, exc_info=True)
        return
    _worker_server.append(server)
    log.info("worker metrics on %s:%s/metrics", settings.LEASEHOLD_METRICS_ADDRESS, port)


def close_inherited_metrics_socket() -> None:
    """In a pool process: close the listening socket inherited from the main process (only the main
    process serves it; a pool process that outlived it must not keep the port)."""
    for server in _worker_server:
        server.socket.close()
    _worker_server.clear()
