"""Lost, full and read-only disks under the real stack: a replica's directory wiped while it
is down, a leader's and a follower's disk filled to ENOSPC under load, and the catalog
SIGKILLed while orders are in flight. Each keeps every acknowledged order (same
number, same content), hands out no number twice, conserves stock toy by toy and ends with
identical replica logs."""

from __future__ import annotations

import shutil
import signal
import time

import pytest
import requests

from app.observe import current_leader, replica_health
from app.orders.log import replica_dir
from tests.support import (
    NO_RESTOCK,
    Shoppers,
    assert_acknowledged_orders_kept,
    new_key,
    order,
    wait_for,
)

pytestmark = pytest.mark.fault


def place(url: str, placed: list, name: str = "Tux", quantity: int = 1) -> int:
    key = new_key()
    reply = order(requests, url, name, quantity, key)
    assert reply.status_code == 201, reply.text
    number = reply.json()["data"]["order_number"]
    placed.append((key, number, name, quantity))
    return number


def test_wiped_follower_rejoins_as_a_learner_and_no_acknowledged_order_is_lost(cluster_factory):
    """The scenario of the issue: follower 1 lags, orders commit on 3 and 2, replica 2 loses
    its disk and restarts, the leader dies, replica 1 resumes. Replica 1 and the blank replica
    2 must not elect a leader without the orders."""
    cluster = cluster_factory(env={**NO_RESTOCK, "ORDER_DEADLINE": "3"})
    url = cluster.frontend_url
    placed: list = []
    for _ in range(3):
        place(url, placed)
    cluster.kill("replica-1", signal.SIGSTOP)
    for _ in range(5):
        place(url, placed, "Lego", 2)  # on replicas 3 and 2 only
    cluster.kill("replica-2")
    shutil.rmtree(replica_dir(cluster.data_dir, 2))
    cluster.start_one("replica-2")
    assert replica_health(cluster)[2]["voter"] is False
    cluster.kill("replica-3")
    cluster.kill("replica-1", signal.SIGCONT)

    refused = order(requests, url, "Tux", 1, new_key())
    assert refused.status_code == 503, refused.text  # no history-less leader is made up
    assert current_leader(cluster) is None

    cluster.restart("replica-3")
    newest = place(url, placed)
    assert newest > max(number for _, number, _, _ in placed[:-1])
    wait_for(lambda: replica_health(cluster)[2]["voter"], 20, "replica 2's promotion")
    assert_acknowledged_orders_kept(cluster, placed)
    # The same key keeps its number after all of it.
    key, number, name, quantity = placed[4]
    again = order(requests, url, name, quantity, key)
    assert again.status_code == 200 and again.json()["data"]["order_number"] == number
    assert again.headers["Idempotent-Replayed"] == "true"


def test_leader_whose_disk_fills_steps_aside_and_serves_again_once_freed(
    small_disks, cluster_factory
):
    cluster = cluster_factory(
        env=NO_RESTOCK,
        before_start=lambda c: small_disks.mount(replica_dir(c.data_dir, 3)),
    )
    url = cluster.frontend_url
    placed: list = []
    for _ in range(5):
        place(url, placed)
    assert current_leader(cluster) == 3
    filler = small_disks.fill(replica_dir(cluster.data_dir, 3))

    with Shoppers(url, 4) as shoppers:
        time.sleep(2.0)
    assert shoppers.errors == []
    assert len(shoppers.placed) > 10
    health = replica_health(cluster)
    assert health[3]["disk"] == "failed" and health[3]["role"] == "follower"
    assert current_leader(cluster) == 2

    filler.unlink()
    wait_for(lambda: replica_health(cluster)[3]["disk"] == "ok", 10, "the disk to recover")
    assert_acknowledged_orders_kept(cluster, placed + shoppers.placed)
    key, number, name, quantity = placed[0]
    again = order(requests, url, name, quantity, key)
    assert again.status_code == 200 and again.json()["data"]["order_number"] == number
    assert again.headers["Idempotent-Replayed"] == "true"


def test_follower_whose_disk_fills_stops_acknowledging_and_catches_up(small_disks, cluster_factory):
    cluster = cluster_factory(
        env=NO_RESTOCK,
        before_start=lambda c: small_disks.mount(replica_dir(c.data_dir, 1)),
    )
    url = cluster.frontend_url
    placed: list = []
    place(url, placed)
    filler = small_disks.fill(replica_dir(cluster.data_dir, 1))
    for _ in range(10):
        place(url, placed)  # committed on replicas 3 and 2
    wait_for(lambda: replica_health(cluster)[1]["disk"] == "failed", 5, "the follower to fail")
    health = replica_health(cluster)
    assert health[1]["commit_index"] < health[3]["commit_index"]
    assert current_leader(cluster) == 3  # a follower's failing disk moves no leadership
    filler.unlink()
    wait_for(lambda: replica_health(cluster)[1]["disk"] == "ok", 10, "the disk to recover")
    assert_acknowledged_orders_kept(cluster, placed)


def test_catalog_killed_mid_order_leaves_no_stock_held(cluster_factory):
    cluster = cluster_factory(env={**NO_RESTOCK, "ORDER_DEADLINE": "3"})
    with Shoppers(cluster.frontend_url, 6) as shoppers:
        time.sleep(1.0)
        cluster.kill("catalog")
        time.sleep(1.0)
        cluster.restart("catalog")
        time.sleep(1.0)
    assert len(shoppers.placed) > 10
    assert all(status == 503 for status, _ in shoppers.errors), shoppers.errors
    assert_acknowledged_orders_kept(cluster, shoppers.placed)
