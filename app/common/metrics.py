"""Prometheus metrics common to every service: its HTTP requests, and ``GET /metrics``.

Under Gunicorn every worker process writes its values to files in PROMETHEUS_MULTIPROC_DIR
(set per service by ``app.cluster.gunicorn_argv``; emptied at start and kept tidy when a worker
exits, by ``app.common.gunicorn_conf``), and a scrape answered by any worker adds them all up.
Without that variable (an app built in a test process) the values live in this process.

Each service's own metrics are in its package (``app.frontend.metrics``, ...), so a service
exposes only its own. Names, types and labels are listed in docs/operations.md.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from flask import Flask, Response, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector

from app.common.config import METRICS_DIR_ENV

# The label of requests that matched no route (404, 405): a raw path would be unbounded.
UNMATCHED = "unmatched"
# Every method Flask routes; anything else a client invents is counted as "other".
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_SCRAPE_HOOKS = "metrics.scrape_hooks"
_STARTED = "toystore.started"

_LABELS = ("service", "route", "method", "status")
REQUESTS = Counter("toystore_http_requests", "HTTP requests served.", _LABELS)
REQUEST_SECONDS = Histogram(
    "toystore_http_request_duration_seconds",
    "Time to serve an HTTP request, from routing to the reply.",
    _LABELS,
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


def install(app: Flask, service: str) -> None:
    """Count and time every request of ``app`` under the name ``service``, and serve
    ``GET /metrics``."""

    @app.before_request
    def _start_clock() -> None:
        request.environ[_STARTED] = time.perf_counter()

    @app.after_request
    def _observe(response: Response) -> Response:
        seconds = time.perf_counter() - request.environ[_STARTED]
        method = request.method if request.method in _METHODS else "other"
        labels = (service, route(), method, str(response.status_code))
        REQUESTS.labels(*labels).inc()
        REQUEST_SECONDS.labels(*labels).observe(seconds)
        return response

    @app.get("/metrics")
    def _metrics() -> Response:
        for hook in app.extensions.get(_SCRAPE_HOOKS, ()):
            hook()
        return Response(generate_latest(_registry()), mimetype=CONTENT_TYPE_LATEST)


def on_scrape(app: Flask, hook: Callable[[], None]) -> None:
    """Run ``hook`` before each scrape of ``app``: to set gauges read from live state."""
    app.extensions.setdefault(_SCRAPE_HOOKS, []).append(hook)


def totals(*counters: Counter) -> list[list[tuple[dict[str, str], float]]]:
    """Each counter's current values with their labels, summed over the workers (the
    workers' files are read once for all of them)."""
    names = [f"{counter.describe()[0].name}_total" for counter in counters]
    found: dict[str, list[tuple[dict[str, str], float]]] = {name: [] for name in names}
    for family in _registry().collect():
        for sample in family.samples:
            if sample.name in found:
                found[sample.name].append((sample.labels, sample.value))
    return [found[name] for name in names]


def route() -> str:
    """The route template the current request matched (``/products/<name>``)."""
    rule = request.url_rule
    return rule.rule if rule is not None else UNMATCHED


def _registry() -> CollectorRegistry:
    if METRICS_DIR_ENV not in os.environ:
        return REGISTRY
    registry = CollectorRegistry()
    MultiProcessCollector(registry)
    return registry
