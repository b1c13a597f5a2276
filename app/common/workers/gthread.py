"""The internal services' Gunicorn worker: Gunicorn's gthread worker (a pool of threads in one
process, which owns the service's SQLite writer and background threads) with the store's JSON
error replies (``JsonErrors``)."""

from __future__ import annotations

from gunicorn.workers.gthread import ThreadWorker as GunicornThreadWorker

from app.common.workers import JsonErrors


class ThreadWorker(JsonErrors, GunicornThreadWorker):
    """Gunicorn's gthread worker with JSON error replies."""
