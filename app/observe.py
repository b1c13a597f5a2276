"""Looking at a running store from outside: replica health, the leader, convergence, and the
committed orders in each replica's file. Shared by the tests, the experiments and chaos runs."""

from __future__ import annotations

import time
from collections.abc import Mapping

import requests

from app.cluster import Cluster
from app.orders.log import read_orders, replica_log_path

OrderRow = tuple[int, str, int, str]  # number, toy, quantity, idempotency key


def replica_health(cluster: Cluster, timeout: float = 2.0) -> dict[int, dict]:
    """Each answering replica's /health data, by replica id."""
    found = {}
    for rid, url in cluster.replica_urls.items():
        try:
            found[rid] = requests.get(f"{url}/health", timeout=timeout).json()["data"]
        except (requests.RequestException, ValueError, KeyError):
            continue
    return found


def current_leader(cluster: Cluster) -> int | None:
    """The replica that says it leads in the highest term (a deposed one may not know yet)."""
    leaders = [
        (h["term"], rid) for rid, h in replica_health(cluster).items() if h["role"] == "leader"
    ]
    return max(leaders)[1] if leaders else None


def wait_converged(cluster: Cluster, timeout: float = 30.0) -> bool:
    """Wait until every replica answers with one and the same fully committed log."""
    deadline = time.monotonic() + timeout
    while True:
        health = replica_health(cluster)
        marks = {(h["commit_index"], h["last_index"]) for h in health.values()}
        if len(health) == len(cluster.replica_urls) and len(marks) == 1:
            commit, last = marks.pop()
            if commit == last:
                return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)


def wait_undos_delivered(cluster: Cluster, timeout: float = 30.0) -> bool:
    """Wait until no answering replica has an undo waiting for the catalog (each retries with
    backoff, so this can take a few seconds after the catalog came back)."""
    deadline = time.monotonic() + timeout
    while True:
        health = replica_health(cluster)
        if all(h.get("pending_undos") == 0 for h in health.values()):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)


def replica_orders(cluster: Cluster) -> dict[int, list[OrderRow]]:
    """Every replica's committed orders, read from its SQLite file."""
    data_dir = cluster.data_dir
    return {rid: read_orders(replica_log_path(data_dir, rid)) for rid in cluster.replica_urls}


def order_table_problems(orders: Mapping[int, list[OrderRow]]) -> list[str]:
    """Every way the replicas' order tables differ or are malformed; empty when all agree."""
    problems = []
    first_id = min(orders)
    first = orders[first_id]
    for rid, rows in orders.items():
        if rows != first:
            problems.append(f"replica {rid} differs from replica {first_id}")
    if [row[0] for row in first] != list(range(len(first))):
        problems.append("order numbers are not contiguous from 0")
    if len({row[3] for row in first}) != len(first):
        problems.append("one idempotency key produced two orders")
    return problems
