"""gunicorn settings: uvicorn workers, JSON logs, Prometheus metrics over every worker.

    gunicorn -c deploy/gunicorn.conf.py [--bind HOST:PORT] [--workers N]

Environment: ``WEB_CONCURRENCY`` (workers, default 2), ``QUANTSERVE_LOG_LEVEL``
(default info), ``PROMETHEUS_MULTIPROC_DIR`` (default ``$TMPDIR/quantserve-metrics``),
and the app's ``QUANTSERVE_*`` settings. Command-line flags override this file.

Each worker loads the model in its own lifespan. With several workers the metrics are
written to files in ``PROMETHEUS_MULTIPROC_DIR`` and ``/metrics`` sums them, so the
variable is set here, before any worker imports ``prometheus_client``; the folder is
emptied when the server starts (old files would be summed in), and a worker's live
gauges are dropped when it exits.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from app.core.logging import logging_config

wsgi_app = "app.main:create_app()"
# uvicorn's workers under gunicorn: unlike `uvicorn --workers`, no ~44 ms added to
# keep-alive requests. Their event loop and HTTP parser are "auto", which picks uvloop
# and httptools (both come with uvicorn[standard]).
worker_class = "uvicorn_worker.UvicornWorker"
bind = ["0.0.0.0:8000"]
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
# A worker loads TensorFlow and the model before it answers its first heartbeat.
timeout = 120
graceful_timeout = 30
keepalive = 5
logconfig_dict = logging_config(os.environ.get("QUANTSERVE_LOG_LEVEL", "info"))
# gunicorn's control socket would live in $HOME, which the container mounts read-only,
# and two servers on one machine would share it.
control_socket_disable = True

METRICS_DIR = Path(
    os.environ.setdefault(
        "PROMETHEUS_MULTIPROC_DIR", str(Path(tempfile.gettempdir()) / "quantserve-metrics")
    )
)


def on_starting(server: Any) -> None:
    """Empty the metrics folder: a previous run's files would be summed with this one's."""
    METRICS_DIR.mkdir(parents=True, exist_ok=True)
    for stale in METRICS_DIR.glob("*.db"):
        stale.unlink()


def child_exit(server: Any, worker: Any) -> None:
    """Drop the live gauges of a worker that exited."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid, str(METRICS_DIR))
