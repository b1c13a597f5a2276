"""The live dashboard: ``GET /dashboard`` (one self-contained page, no build step, no CDN)
and ``GET /dashboard/state``, the snapshot the page polls every second.

The snapshot is this worker's view: the replicas as their health replies say right now, the
leader those replies name (``leader_choice``), the front-end's request and cache counters
summed over every worker, and the invalidations this worker received most recently (each
worker subscribes, so each sees them all). The page turns successive counters into rates.
"""

from __future__ import annotations

import time
from collections import Counter
from importlib.resources import files
from typing import Any

from flask import Blueprint, Response, current_app

from app.common import metrics
from app.common.errors import ok
from app.frontend import leader_choice
from app.frontend.metrics import CACHE_FILLS, CACHE_LOOKUPS
from app.frontend.services import Frontend

bp = Blueprint("dashboard", __name__)

PAGE = files(__package__).joinpath("dashboard.html").read_bytes()
# The page runs only its own inline script and style and talks only to this front-end.
PAGE_POLICY = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "connect-src 'self'; img-src 'self' data:"
)
# What the page shows of a replica's health reply, with the type each field must have.
REPLICA_FIELDS = {
    "role": str,
    "term": int,
    "commit_index": int,
    "last_index": int,
    "ready": bool,
    "voter": bool,
    "disk": str,
}


@bp.get("/dashboard")
def page() -> Response:
    response = Response(PAGE, mimetype="text/html")
    response.headers["Content-Security-Policy"] = PAGE_POLICY
    return response


@bp.get("/dashboard/state")
def state():
    return ok(snapshot(current_app.extensions["frontend"]))


def snapshot(frontend: Frontend) -> dict[str, Any]:
    healths = frontend.orders.survey()
    chosen = leader_choice.choose(healths)
    cache = frontend.cache
    lookups, fills, served = metrics.totals(CACHE_LOOKUPS, CACHE_FILLS, metrics.REQUESTS)
    return {
        "at": time.time(),
        "leader": {"id": chosen[0], "term": chosen[1]} if chosen else None,
        "replicas": [replica_view(rid, health) for rid, health in healths.items()],
        "cache": {
            "enabled": cache.enabled,
            "subscribed": cache.subscribed,
            "lookups": _by_label(lookups, "result"),
            "fills": _by_label(fills, "result"),
        },
        "requests": _requests(served, frontend.settings.service_name("frontend")),
        "invalidations": list(cache.recent),
    }


def replica_view(rid: int, health: dict[str, Any] | None) -> dict[str, Any]:
    """A replica as the page shows it: its id, whether it answered, and the typed fields of
    its health reply (a field of the wrong type shows as null)."""
    view: dict[str, Any] = {"id": rid, "answered": health is not None}
    for field, kind in REPLICA_FIELDS.items():
        value = (health or {}).get(field)
        # bool is an int: a term of True is not a term.
        typed = isinstance(value, kind) and (kind is bool or not isinstance(value, bool))
        view[field] = value if typed else None
    return view


Samples = list[tuple[dict[str, str], float]]


def _by_label(samples: Samples, label: str) -> dict[str, float]:
    summed: Counter[str] = Counter()
    for labels, value in samples:
        summed[labels[label]] += value
    return dict(summed)


def _requests(samples: Samples, service: str) -> dict[str, Any]:
    """This front-end's requests so far: by route, and how many were answered 5xx."""
    by_route: Counter[str] = Counter()
    server_errors = 0.0
    for labels, value in samples:
        if labels["service"] != service:
            continue
        by_route[labels["route"]] += value
        if labels["status"].startswith("5"):
            server_errors += value
    return {"by_route": dict(by_route), "server_errors": server_errors}
