"""Helpers for tests that drive a running store: orders, replica files, the catalog ledger."""

from __future__ import annotations

import time
import uuid
from collections import Counter

import requests

from app.cluster import Cluster
from app.orders.log import read_orders

JSON = {"Content-Type": "application/json"}


def order(session, url: str, name: str, quantity: int, key: str | None = None):
    headers = {"Idempotency-Key": key} if key else {}
    return session.post(f"{url}/orders", json={"name": name, "quantity": quantity}, headers=headers)


def stock(url: str, name: str) -> int:
    return requests.get(f"{url}/products/{name}", timeout=5).json()["data"]["quantity"]


def replica_health(cluster: Cluster) -> dict[int, dict]:
    health = {}
    for rid, url in cluster.replica_urls.items():
        try:
            health[rid] = requests.get(f"{url}/health", timeout=2).json()["data"]
        except requests.RequestException:
            continue
    return health


def wait_converged(cluster: Cluster, timeout: float = 20.0) -> int:
    """Wait until every replica holds the same log and commit index; return that index."""
    deadline = time.monotonic() + timeout
    while True:
        health = replica_health(cluster)
        marks = {(h["commit_index"], h["last_index"]) for h in health.values()}
        if len(health) == len(cluster.replica_urls) and len(marks) == 1:
            commit, last = marks.pop()
            if commit == last:
                return commit
        if time.monotonic() > deadline:
            raise AssertionError(f"replicas did not converge: {health}")
        time.sleep(0.1)


def replica_orders(cluster: Cluster) -> dict[int, list[tuple[int, str, int, str]]]:
    """Every replica's committed orders, read from its SQLite file."""
    return {
        rid: read_orders(cluster.data_dir / f"orders-{rid}.sqlite3") for rid in cluster.replica_urls
    }


def assert_replicas_identical(cluster: Cluster) -> list[tuple[int, str, int, str]]:
    wait_converged(cluster)
    orders = replica_orders(cluster)
    first = orders[min(orders)]
    for rid, rows in orders.items():
        assert rows == first, f"replica {rid} differs"
    assert [row[0] for row in first] == list(range(len(first))), "numbers not contiguous"
    assert len({row[3] for row in first}) == len(first), "a key produced two orders"
    return first


def assert_stock_adds_up(cluster: Cluster, orders: list[tuple[int, str, int, str]]) -> None:
    """The catalog sold exactly what the committed orders bought, toy by toy."""
    ledger = requests.get(f"{cluster.catalog_url}/ledger", timeout=5).json()["data"]
    sold = Counter()
    for _, name, quantity, _ in orders:
        sold[name] += quantity
    for row in ledger:
        assert row["balanced"], row
        assert row["sold"] == sold[row["name"]], (row, sold[row["name"]])


def new_key() -> str:
    return uuid.uuid4().hex
