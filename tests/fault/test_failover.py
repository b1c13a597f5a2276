"""Faults with SIGKILL against the real stack: leader, follower, two replicas, catalog, Redis;
two of five replicas, the leader among them; and frozen (SIGSTOPped) replicas against
the order deadline."""

from __future__ import annotations

import signal
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis
import requests

from app.cluster import replica_name
from app.observe import current_leader, replica_health
from tests.support import (
    NO_RESTOCK,
    Shoppers,
    assert_acknowledged_orders_kept,
    assert_replicas_identical,
    assert_stock_adds_up,
    order,
    stock,
)

pytestmark = pytest.mark.fault


def test_leader_killed_while_eight_shoppers_order(cluster_factory):
    cluster = cluster_factory(env=NO_RESTOCK, replicas=3)
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
    cluster = cluster_factory(env=NO_RESTOCK, replicas=3)
    with Shoppers(cluster.frontend_url, 4) as shoppers:
        time.sleep(0.5)
        cluster.kill("replica-1")
        time.sleep(1.5)
    missed = len(shoppers.placed)
    assert shoppers.errors == [] and missed > 10
    cluster.restart("replica-1")
    assert_acknowledged_orders_kept(cluster, shoppers.placed)


def test_two_replicas_down_refuses_orders_and_moves_no_stock(cluster_factory):
    cluster = cluster_factory(env={**NO_RESTOCK, "ORDER_DEADLINE": "2"}, replicas=3)
    url = cluster.frontend_url
    assert order(requests, url, "Tux", 1).status_code == 201
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
    while (reply := order(requests, url, "Tux", 1)).status_code != 201:
        assert time.monotonic() < deadline, reply.text
    assert stock(url, "Tux") == before - 1
    cluster.restart("replica-1")
    orders = assert_replicas_identical(cluster)
    assert_stock_adds_up(cluster, orders)


@pytest.mark.parametrize("frozen", [("replica-3",), ("replica-1", "replica-2")])
def test_an_order_gets_its_503_within_the_order_deadline(cluster_factory, frozen):
    """Frozen replicas accept connections and never answer: every wait of the front-end (the
    order, health checks, elections) must fit in what is left of ORDER_DEADLINE."""
    deadline = 1.5
    cluster = cluster_factory(env={**NO_RESTOCK, "ORDER_DEADLINE": str(deadline)}, replicas=3)
    url = cluster.frontend_url
    assert order(requests, url, "Tux", 1).status_code == 201
    for name in frozen:
        cluster.kill(name, signal.SIGSTOP)
    try:
        for _ in range(3):
            start = time.monotonic()
            reply = order(requests, url, "Tux", 1)
            took = time.monotonic() - start
            if reply.status_code == 201:  # a frozen leader was replaced in time
                continue
            assert reply.status_code == 503, reply.text
            assert reply.headers["Retry-After"] == "1"
            assert took < deadline + 0.5, f"503 after {took:.2f} s"
    finally:
        for name in frozen:
            cluster.kill(name, signal.SIGCONT)


def test_orders_to_a_frozen_leader_move_to_its_successor_within_seconds(cluster_factory):
    """A leader that accepts connections and never answers (SIGSTOP: like one cut from
    everyone) is replaced by the followers within one election timeout, and the front-end
    stops waiting on it as soon as the replicas name the new leader. Measured on an idle
    machine the slowest order takes 0.8-1.4 s (the lab's partition tests hold SPEC's 1.5 s);
    the bound here leaves room for a loaded one and still fails both earlier behaviours:
    5.5 s (the front-end elected after its call timed out) and 2.6 s (no watch on the call)."""
    cluster = cluster_factory(env=NO_RESTOCK, replicas=3)
    url = cluster.frontend_url
    assert order(requests, url, "Tux", 1).status_code == 201
    old = current_leader(cluster)
    cluster.kill(replica_name(old), signal.SIGSTOP)
    try:
        with ThreadPoolExecutor(4) as pool:
            replies = list(pool.map(lambda _: timed_order(url), range(8)))
        assert [status for status, _ in replies] == [201] * 8
        slowest = max(took for _, took in replies)
        assert slowest < 2.2, f"an order took {slowest:.2f} s"
        new = current_leader(cluster)
        assert new is not None and new != old
    finally:
        cluster.kill(replica_name(old), signal.SIGCONT)


def timed_order(url: str) -> tuple[int, float]:
    start = time.monotonic()
    status = order(requests, url, "Tux", 1).status_code
    return status, time.monotonic() - start


def test_catalog_killed_keeps_committed_stock(cluster_factory):
    cluster = cluster_factory(env={**NO_RESTOCK, "ORDER_DEADLINE": "2"})
    url = cluster.frontend_url
    for _ in range(5):
        assert order(requests, url, "Barbie", 3).status_code == 201
    assert stock(url, "Barbie") == 85
    cluster.kill("catalog")
    assert order(requests, url, "Barbie", 1).status_code == 503
    cluster.restart("catalog")
    direct = requests.get(
        f"{cluster.catalog_url}/products/Barbie", headers=cluster.internal_headers
    ).json()["data"]
    assert direct["quantity"] == 85
    assert stock(url, "Barbie") == 85
    assert order(requests, url, "Barbie", 1).status_code == 201
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
        assert order(requests, url, "Python", 2).status_code == 201
        assert stock(url, "Python") == expected
    cluster.restart("redis")
    deadline = time.monotonic() + 15
    while not cache.exists(key):
        assert time.monotonic() < deadline, "caching did not resume"
        assert stock(url, "Python") == 96
        time.sleep(0.2)
    assert order(requests, url, "Python", 1).status_code == 201
    assert stock(url, "Python") == 95


def test_five_replicas_keep_ordering_with_two_killed_the_leader_among_them(cluster_factory):
    cluster = cluster_factory(env={**NO_RESTOCK, "SERVICE_THREADS": "8"}, replicas=5)
    with Shoppers(cluster.frontend_url, 4) as shoppers:
        time.sleep(1.0)
        cluster.kill("replica-5")
        cluster.kill("replica-4")
        before = len(shoppers.placed)
        time.sleep(2.5)
        during = len(shoppers.placed) - before
    # The front-end's retries hide both kills: every order got its answer.
    assert shoppers.errors == []
    assert during > 10
    health = replica_health(cluster)
    assert sorted(health) == [1, 2, 3]
    # A survivor leads and the others follow it. Not always replica 3: each front-end worker
    # selects on its own, and one whose election at 3 was overtaken by a sibling's moves on.
    leaders = {rid for rid, h in health.items() if h["role"] == "leader"}
    assert len(leaders) == 1 and {h["leader_id"] for h in health.values()} == leaders, health
    cluster.restart("replica-4")
    cluster.restart("replica-5")
    assert_acknowledged_orders_kept(cluster, shoppers.placed)
