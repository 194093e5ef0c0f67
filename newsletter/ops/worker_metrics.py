"""Metrics of ``newsletter worker`` processes, with ``NEWSLETTER_WORKER_METRICS_PORT`` set.

Every worker process adds Dramatiq's own Prometheus middleware (messages processed, failed,
in progress and their durations, by queue and actor) and counts its SMTP replies
(``ops.metrics``); prometheus-client's multiprocess mode keeps their values in a folder the
processes share, and the parent serves them merged on the port.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Any

from flask import Flask

#: the environment variables prometheus-client and Dramatiq's middleware read the folder from
FOLDER_VARIABLES = ("PROMETHEUS_MULTIPROC_DIR", "prometheus_multiproc_dir", "dramatiq_prom_db")


def wanted(app: Flask) -> bool:
    """Whether the settings ask workers to serve their metrics."""
    return bool(app.config.get("WORKER_METRICS_PORT"))


def prepare_folder() -> str:
    """Make a fresh folder for the processes' values and name it in the environment, before
    any process imports prometheus-client (child processes inherit it)."""
    folder = tempfile.mkdtemp(prefix="newsletter-metrics-")
    for variable in FOLDER_VARIABLES:
        os.environ[variable] = folder
    return folder


def serve(app: Flask) -> Any:
    """Serve the merged values of every worker process on the configured port; return the
    server (``shutdown()`` it when the workers stop)."""
    from prometheus_client import CollectorRegistry, start_http_server
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    MultiProcessCollector(registry)
    host = str(app.config.get("WORKER_METRICS_HOST") or "127.0.0.1")
    server, _thread = start_http_server(int(app.config["WORKER_METRICS_PORT"]), host, registry)
    return server


def instrument(broker: Any) -> Any:
    """Add Dramatiq's Prometheus middleware to this process's broker and start it (our own
    runner, not Dramatiq's CLI, boots the process); return it for :func:`finish`."""
    from dramatiq.middleware.prometheus import Prometheus

    middleware = Prometheus()
    broker.add_middleware(middleware)
    middleware.after_process_boot(broker)
    return middleware


def finish(middleware: Any) -> None:
    """Mark this process's values dead (its gauges leave the merged view)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(os.getpid())
    del middleware


def remove_folder(folder: str) -> None:
    """Drop the folder when the last process has stopped."""
    shutil.rmtree(folder, ignore_errors=True)
