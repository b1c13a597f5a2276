"""Faults with SIGKILL against the real stack: leader, follower, two replicas, catalog, Redis."""

from __future__ import annotations

import random
import threading
import time

import pytest
import redis
import requests

from app.observe import replica_health
from tests.support import assert_replicas_identical, assert_stock_adds_up, new_key, order, stock

TOYS = ["Tux", "Whale", "Fox", "Python", "Barbie", "Lego", "Monopoly", "Frisbee"]
NO_RESTOCK = {"RESTOCK_INTERVAL": "3600"}

pytestmark = pytest.mark.fault


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
            if reply.status_code == 200:
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


def test_leader_killed_while_eight_shoppers_order(cluster_factory):
    cluster = cluster_factory(env=NO_RESTOCK)
    with Shoppers(cluster.frontend_url, 8) as shoppers:
        time.sleep(1.5)
        cluster.kill("replica-3")
        time.sleep(2.5)
    assert shoppers.errors == []
    assert len(shoppers.placed) > 50
    health = replica_health(cluster)
    assert health[2]["role"] == "leader"
    cluster.restart("replica-3")
    assert_acknowledged_orders_kept(cluster, shoppers.placed)


def test_follower_killed_catches_up_after_restart(cluster_factory):
    cluster = cluster_factory(env=NO_RESTOCK)
    with Shoppers(cluster.frontend_url, 4) as shoppers:
        time.sleep(0.5)
        cluster.kill("replica-1")
        time.sleep(1.5)
    missed = len(shoppers.placed)
    assert shoppers.errors == [] and missed > 10
    cluster.restart("replica-1")
    assert_acknowledged_orders_kept(cluster, shoppers.placed)


def test_two_replicas_down_refuses_orders_and_moves_no_stock(cluster_factory):
    cluster = cluster_factory(env={**NO_RESTOCK, "ORDER_DEADLINE": "2"})
    url = cluster.frontend_url
    assert order(requests, url, "Tux", 1).status_code == 200
    before = stock(url, "Tux")
    cluster.kill("replica-1")
    cluster.kill("replica-2")
    time.sleep(0.3)
    for _ in range(3):
        reply = order(requests, url, "Tux", 1)
        assert reply.status_code == 503
        assert reply.json()["error"]["code"] == 503
    assert stock(url, "Tux") == before
    cluster.restart("replica-2")
    deadline = time.monotonic() + 10
    while (reply := order(requests, url, "Tux", 1)).status_code != 200:
        assert time.monotonic() < deadline, reply.text
    assert stock(url, "Tux") == before - 1
    cluster.restart("replica-1")
    orders = assert_replicas_identical(cluster)
    assert_stock_adds_up(cluster, orders)


def test_catalog_killed_keeps_committed_stock(cluster_factory):
    cluster = cluster_factory(env={**NO_RESTOCK, "ORDER_DEADLINE": "2"})
    url = cluster.frontend_url
    for _ in range(5):
        assert order(requests, url, "Barbie", 3).status_code == 200
    assert stock(url, "Barbie") == 85
    cluster.kill("catalog")
    assert order(requests, url, "Barbie", 1).status_code == 503
    cluster.restart("catalog")
    direct = requests.get(f"{cluster.catalog_url}/products/Barbie").json()["data"]
    assert direct["quantity"] == 85
    assert stock(url, "Barbie") == 85
    assert order(requests, url, "Barbie", 1).status_code == 200
    assert stock(url, "Barbie") == 84
    assert_stock_adds_up(cluster, assert_replicas_identical(cluster))


def test_redis_killed_store_keeps_serving_and_caching_resumes(cluster_factory):
    cluster = cluster_factory(env=NO_RESTOCK)
    url = cluster.frontend_url
    key = "toystore:product:Python"
    cache = redis.Redis.from_url(cluster.redis_url)
    # Each front-end worker caches only once its listener has subscribed.
    deadline = time.monotonic() + 10
    while not cache.exists(key):
        assert time.monotonic() < deadline, "the product was never cached"
        assert stock(url, "Python") == 100
    cluster.kill("redis")
    for expected in (98, 96):
        assert order(requests, url, "Python", 2).status_code == 200
        assert stock(url, "Python") == expected
    cluster.restart("redis")
    deadline = time.monotonic() + 15
    while not cache.exists(key):
        assert time.monotonic() < deadline, "caching did not resume"
        assert stock(url, "Python") == 96
        time.sleep(0.2)
    assert order(requests, url, "Python", 1).status_code == 200
    assert stock(url, "Python") == 95
