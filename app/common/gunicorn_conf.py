"""Gunicorn's configuration for every service (``--config python:app.common.gunicorn_conf``,
given by ``app.cluster.gunicorn_argv``): its logs as JSON lines like the services' own, one
access line per request, and the bookkeeping of the Prometheus multiprocess directory.

The service's name comes from Gunicorn's ``--name`` and the metrics directory from its
``--env PROMETHEUS_MULTIPROC_DIR=...``. prometheus_client decides at import whether it runs
in multiprocess mode, from that variable, which Gunicorn sets only after loading this file:
so nothing here imports it before a hook runs. Nor does anything here import
``concurrent.futures``, which must not be imported before the gevent worker patches the
standard library (``app.common.workers``).
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from gunicorn import glogging

from app.common.config import METRICS_DIR_ENV
from app.common.logs import ACCESS_ENVIRON_KEY, JsonFormatter, log_event

# The replication stream: a leader sends each follower an append every HEARTBEAT_INTERVAL
# even when idle, which would bury every other line of a replica's log.
UNLOGGED_ROUTES = frozenset({"/raft/append"})


class JsonLogger(glogging.Logger):
    """Gunicorn's error log and access log, as JSON lines on stderr tagged with the service,
    like every other line of the service."""

    def setup(self, cfg) -> None:
        super().setup(cfg)
        formatter = JsonFormatter(cfg.proc_name)
        for log in (self.error_log, self.access_log):
            for handler in log.handlers:
                handler.setFormatter(formatter)
                if isinstance(handler, logging.StreamHandler) and handler.stream is sys.stdout:
                    handler.setStream(sys.stderr)  # Gunicorn's "-" for the access log

    def access(self, resp, req, environ, request_time) -> None:
        if not self.access_log_enabled:
            return
        noted = environ.get(ACCESS_ENVIRON_KEY, {})
        route = noted.get("route")
        if route in UNLOGGED_ROUTES:
            return
        log_event(
            self.access_log,
            "request",
            method=environ.get("REQUEST_METHOD"),
            path=environ.get("PATH_INFO"),
            route=route,
            status=_status(resp.status),
            duration_ms=round(request_time.total_seconds() * 1000, 3),
            request_id=noted.get("request_id"),
        )


def _status(status: str | None) -> int | None:
    """The code of a status line (``"200 OK"``); None when no reply was begun."""
    return int(status.split(None, 1)[0]) if status else None


logger_class = JsonLogger
accesslog = "-"


def _metrics_dir() -> Path:
    return Path(os.environ[METRICS_DIR_ENV])


def on_starting(server) -> None:
    """Start from an empty metrics directory: files a crashed run left would add up into
    this run's counters."""
    path = _metrics_dir()
    path.mkdir(parents=True, exist_ok=True)
    for stale in path.glob("*.db"):
        stale.unlink()


def child_exit(server, worker) -> None:
    """A worker is gone: its live gauges go with it (its counters keep counting in the sum)."""
    from prometheus_client.multiprocess import mark_process_dead  # only now: see above

    mark_process_dead(worker.pid, str(_metrics_dir()))
