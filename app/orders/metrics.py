"""An order replica's own Prometheus metrics (listed in docs/operations.md): its state, read
from the replica at each scrape (``record_state``), so a gauge is never behind."""

from __future__ import annotations

from typing import Any

from prometheus_client import Gauge

from app.orders.replication import Role


def _gauge(name: str, meaning: str, labels: tuple[str, ...] = ()) -> Gauge:
    # One worker per replica; "live": the values of a worker that died go with it.
    return Gauge(name, meaning, labels, multiprocess_mode="livemostrecent")


ROLE = _gauge("toystore_replica_role", "1 for this replica's current role, else 0.", ("role",))
TERM = _gauge("toystore_replica_term", "The replica's current term.")
COMMIT_INDEX = _gauge("toystore_replica_commit_index", "Index of the last committed order.")
LAST_INDEX = _gauge("toystore_replica_last_index", "Index of the last order in the log.")
PENDING_UNDOS = _gauge(
    "toystore_replica_pending_undos", "Undos of purchases not yet delivered to the catalog."
)
DISK_FAILED = _gauge("toystore_replica_disk_failed", "1 while the replica's disk fails writes.")


def record_state(health: dict[str, Any]) -> None:
    """Set the gauges from the replica's health (``OrderNode.health``)."""
    for role in Role:
        ROLE.labels(role.value).set(1 if health["role"] == role.value else 0)
    TERM.set(health["term"])
    COMMIT_INDEX.set(health["commit_index"])
    LAST_INDEX.set(health["last_index"])
    PENDING_UNDOS.set(health["pending_undos"])
    DISK_FAILED.set(1 if health["disk"] == "failed" else 0)
