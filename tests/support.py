"""Helpers for tests that drive a running store: orders, replica files, the catalog ledger."""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest
import requests

from app.chaos import disks
from app.cluster import Cluster
from app.observe import (
    OrderRow,
    order_table_problems,
    replica_health,
    replica_orders,
    wait_converged,
    wait_undos_delivered,
)

JSON = {"Content-Type": "application/json"}
TOYS = ["Tux", "Whale", "Fox", "Python", "Barbie", "Lego", "Monopoly", "Frisbee"]
NO_RESTOCK = {"RESTOCK_INTERVAL": "3600"}


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
    assert wait_undos_delivered(cluster), f"undos still pending: {replica_health(cluster)}"
    ledger = requests.get(
        f"{cluster.catalog_url}/ledger", headers=cluster.internal_headers, timeout=5
    ).json()["data"]
    sold = Counter()
    for _, name, quantity, _ in orders:
        sold[name] += quantity
    for row in ledger:
        assert row["balanced"], row
        assert row["sold"] == sold[row["name"]], (row, sold[row["name"]])


def wait_for(condition, timeout: float, what: str):
    """Poll ``condition`` until it is truthy and return its value; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
    return value


def wait_workers_subscribed(cluster: Cluster, timeout: float = 20.0) -> None:
    """Wait until every front-end worker has subscribed to invalidations (its log says so):
    a worker that boots late misses what was published before it subscribed."""
    log_file = cluster.log_dir / "frontend.log"
    workers = cluster.settings.frontend_workers

    def subscribed() -> bool:
        return log_file.read_text().count('"event": "cache subscribed"') >= workers

    wait_for(subscribed, timeout, f"{workers} front-end workers subscribed")


def new_key() -> str:
    return uuid.uuid4().hex


class Shoppers:
    """Threads that place orders with fresh keys until stopped, recording every reply."""

    def __init__(self, url: str, count: int) -> None:
        self.url = url
        self.stop = threading.Event()
        self.placed: list[tuple[str, int, str, int]] = []  # key, number, name, quantity
        self.sold_out = 0  # 400s for lack of stock: a real answer, not a failure
        self.errors: list[tuple[int, str]] = []
        self.threads = [threading.Thread(target=self._run, args=(i,)) for i in range(count)]

    def __enter__(self) -> Shoppers:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=30)

    def _run(self, seed: int) -> None:
        session = requests.Session()
        rng = random.Random(seed)
        while not self.stop.is_set():
            key, name, quantity = new_key(), rng.choice(TOYS), rng.randint(1, 2)
            reply = order(session, self.url, name, quantity, key)
            if reply.status_code == 201:
                self.placed.append((key, reply.json()["data"]["order_number"], name, quantity))
            elif reply.status_code == 400 and "left" in reply.json()["error"]["message"]:
                self.sold_out += 1
            else:
                self.errors.append((reply.status_code, reply.text))


def assert_acknowledged_orders_kept(cluster, placed) -> None:
    orders = assert_replicas_identical(cluster)
    by_number = {number: (key, name, quantity) for number, name, quantity, key in orders}
    for key, number, name, quantity in placed:
        assert by_number.get(number) == (key, name, quantity), f"order {number} lost or changed"
    assert_stock_adds_up(cluster, orders)


class SmallDisks:
    """Small tmpfs mounts (app/chaos/disks.py) standing in for a replica's own disk: filled
    to ENOSPC, and unmounted at the end. Needs root; the test is skipped (with the reason
    printed) where mounting is not possible."""

    def __init__(self) -> None:
        self.disks = disks.SmallDisks()

    def mount(self, path: Path, size: str = "8m") -> Path:
        reason = self.disks.mount([path], size)
        if reason is not None:
            pytest.skip(reason)
        return path

    @staticmethod
    def fill(path: Path) -> Path:
        """Write zeros until the disk is full; the filler file is returned for freeing it."""
        disks.fill(path)
        return path / disks.FILLER

    def close(self) -> None:
        self.disks.unmount()
