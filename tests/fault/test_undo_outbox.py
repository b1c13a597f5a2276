"""The purchase saga's outbox against real processes: an undo that cannot reach the catalog
waits on the replica's disk and is delivered once the catalog is back, with no leader change;
meanwhile the catalog's books say the stock is held, and balance once it is back."""

from __future__ import annotations

import os
import signal
import sqlite3
import threading
import time

import pytest
import requests

from app.catalog.store import read_ledger
from app.observe import replica_health
from tests.support import new_key, order, wait_for

pytestmark = pytest.mark.fault

ENV = {
    "RESTOCK_INTERVAL": "3600",
    # The order gives up on its commit well before the replicators' calls to the stopped
    # followers time out: its entry has left no message, so the leader drops it and undoes.
    "COMMIT_TIMEOUT": "1.0",
    "HTTP_TIMEOUT": "3.0",
    "UNDO_RETRY_FIRST": "0.5",
    "UNDO_RETRY_MAX": "1.0",
    # The followers are frozen on purpose: check-quorum must not depose the leader meanwhile,
    # since the point is an undo delivered by the same leader in the same term.
    "ELECTION_TIMEOUT": "30",
}


def signal_all(cluster, name: str, sig: int) -> None:
    for pid in cluster.processes(name):
        os.kill(pid, sig)


def tux_books(cluster) -> dict:
    """The catalog's ledger row for Tux, read from its file (the catalog may be down)."""
    db = sqlite3.connect(f"file:{cluster.data_dir / 'catalog.sqlite3'}?mode=ro", uri=True)
    try:
        return next(row for row in read_ledger(db) if row.name == "Tux").as_dict()
    finally:
        db.close()


def _store_with_a_settled_order(cluster_factory):
    """A store whose first order is settled, a session that may call its replicas, and the
    leader's id."""
    cluster = cluster_factory(env=ENV)
    session = requests.Session()
    session.headers.update(cluster.internal_headers)  # it calls the leader directly
    assert order(session, cluster.frontend_url, "Tux", 1).status_code == 201
    wait_for(lambda: tux_books(cluster)["settled"] == 1, 5, "the first order settled")
    return cluster, session, max(cluster.replica_urls)


def test_undo_waits_for_the_catalog_and_happens_without_a_leader_change(cluster_factory):
    cluster, session, leader = _store_with_a_settled_order(cluster_factory)
    term = replica_health(cluster)[leader]["term"]
    leader_url = cluster.replica_urls[leader]

    followers = [f"replica-{rid}" for rid in cluster.replica_urls if rid != leader]
    for name in followers:
        signal_all(cluster, name, signal.SIGSTOP)
    # Let each replicator's next heartbeat go out to its stopped follower and hang there, so
    # that no message carries the new order's entry.
    time.sleep(0.3)
    key = new_key()
    reply: dict = {}

    def place() -> None:
        body = {"name": "Tux", "quantity": 3, "key": key}
        reply["status"] = session.post(f"{leader_url}/orders", json=body, timeout=10).status_code

    try:
        placing = threading.Thread(target=place)
        placing.start()
        # The purchase lands; then the catalog dies before the order gives up on its commit.
        wait_for(lambda: tux_books(cluster)["held"] == 3, 1.0, "the purchase")
        cluster.kill("catalog")
        placing.join(timeout=10)
    finally:
        for name in followers:
            signal_all(cluster, name, signal.SIGCONT)
    assert reply["status"] == 503

    # Meanwhile: the undo is pending on the leader, the stock held at the catalog.
    time.sleep(1.5)  # a few retries fail
    assert replica_health(cluster)[leader]["pending_undos"] == 1
    books = tux_books(cluster)
    assert (books["held"], books["held_keys"], books["quantity"]) == (3, [key], 96)

    cluster.start_one("catalog")
    wait_for(
        lambda: replica_health(cluster)[leader]["pending_undos"] == 0, 15, "the undo delivered"
    )
    ledger = session.get(f"{cluster.catalog_url}/ledger", timeout=5).json()["data"]
    tux = next(row for row in ledger if row["name"] == "Tux")
    assert (tux["held"], tux["settled"], tux["undone"]) == (0, 1, 3)
    assert (tux["quantity"], tux["balanced"]) == (99, True)
    health = replica_health(cluster)
    assert health[leader]["role"] == "leader" and health[leader]["term"] == term

    # The outbox row is gone from the leader's disk too: a restart sends nothing again.
    cluster.kill(f"replica-{leader}")
    cluster.start_one(f"replica-{leader}")
    assert replica_health(cluster)[leader]["pending_undos"] == 0


def test_pending_undo_survives_a_sigkill_of_the_replica(cluster_factory):
    cluster, session, leader = _store_with_a_settled_order(cluster_factory)
    leader_url = cluster.replica_urls[leader]

    cluster.kill("catalog")
    body = {"name": "Tux", "quantity": 2, "key": new_key()}
    # The catalog refuses the connection: nothing can have landed, so nothing to undo.
    assert session.post(f"{leader_url}/orders", json=body, timeout=10).status_code == 503
    assert replica_health(cluster)[leader]["pending_undos"] == 0

    cluster.start_one("catalog")
    signal_all(cluster, "catalog", signal.SIGSTOP)
    try:
        # The buy is taken in and never answered: it may land, so the leader queues its undo.
        assert session.post(f"{leader_url}/orders", json=body, timeout=10).status_code == 503
        assert replica_health(cluster)[leader]["pending_undos"] == 1
        cluster.kill(f"replica-{leader}")
        cluster.start_one(f"replica-{leader}")
        assert replica_health(cluster)[leader]["pending_undos"] == 1  # reloaded from disk
    finally:
        signal_all(cluster, "catalog", signal.SIGCONT)
    wait_for(
        lambda: replica_health(cluster).get(leader, {}).get("pending_undos") == 0,
        15,
        "the undo delivered",
    )
    wait_for(lambda: tux_books(cluster)["held"] == 0, 5, "the stock back")
    books = tux_books(cluster)
    assert (books["quantity"], books["settled"], books["balanced"]) == (99, 1, True)
