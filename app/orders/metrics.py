"""An order replica's own Prometheus metrics (listed in docs/operations.md): its state, read
from the replica at each scrape (``record_state``), so a gauge is never behind."""

from __future__ import annotations

from typing import Any

from prometheus_client import Gauge, Histogram

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
REPLICATION_LAG = _gauge(
    "toystore_replica_replication_lag",
    "On the leader: orders in its log that a follower does not hold yet (0 on followers).",
    ("follower",),
)
COMMIT_SECONDS = Histogram(
    "toystore_replica_commit_seconds",
    "On the leader: from an order's append to its commit on a majority.",
    buckets=(0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)


def record_state(health: dict[str, Any], lag: dict[int, int]) -> None:
    """Set the gauges from the replica's health (``OrderNode.health``) and the followers'
    lag (``OrderNode.replication_lag``)."""
    for follower, behind in lag.items():
        REPLICATION_LAG.labels(str(follower)).set(behind)
    for role in Role:
        ROLE.labels(role.value).set(1 if health["role"] == role.value else 0)
    TERM.set(health["term"])
    COMMIT_INDEX.set(health["commit_index"])
    LAST_INDEX.set(health["last_index"])
    PENDING_UNDOS.set(health["pending_undos"])
    DISK_FAILED.set(1 if health["disk"] == "failed" else 0)
