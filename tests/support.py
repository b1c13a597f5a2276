"""Helpers for tests that drive a running store: orders, replica files, the catalog ledger."""

from __future__ import annotations

import uuid
from collections import Counter

import requests

from app.cluster import Cluster
from app.observe import (
    OrderRow,
    order_table_problems,
    replica_health,
    replica_orders,
    wait_converged,
)

JSON = {"Content-Type": "application/json"}


def order(session, url: str, name: str, quantity: int, key: str | None = None):
    headers = {"Idempotency-Key": key} if key else {}
    return session.post(f"{url}/orders", json={"name": name, "quantity": quantity}, headers=headers)


def stock(url: str, name: str) -> int:
    return requests.get(f"{url}/products/{name}", timeout=5).json()["data"]["quantity"]


def assert_replicas_identical(cluster: Cluster) -> list[OrderRow]:
    assert wait_converged(cluster, timeout=20), (
        f"replicas did not converge: {replica_health(cluster)}"
    )
    orders = replica_orders(cluster)
    assert order_table_problems(orders) == []
    return orders[min(orders)]


def assert_stock_adds_up(cluster: Cluster, orders: list[OrderRow]) -> None:
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
