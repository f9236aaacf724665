"""gunicorn server hooks for the metrics (README "Metrics and alerts"); config/gunicorn.py calls them.

gunicorn's master loads no Django (its workers do): these use prometheus-client alone.
- `on_starting(server)`: empties PROMETHEUS_MULTIPROC_DIR, so a restarted container does not add up the
  files of processes from before.
- `child_exit(server, worker)`: a worker process ended; its live gauges are dropped (its counters stay
  in the sums, as they should).
The web metrics themselves are served by the workers, on the metrics listener (config/metrics.py):
gunicorn must bind `0.0.0.0:$LEASEHOLD_METRICS_PORT` (9100) besides the web port.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def on_starting(server: Any) -> None:
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")
    if path:
        for file in Path(path).glob("*.db"):
            file.unlink(missing_ok=True)


def child_exit(server: Any, worker: Any) -> None:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
