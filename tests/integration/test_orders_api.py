"""Orders through the real stack: front-end, catalog, the replicas, Redis, all processes."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis
import requests

from app.observe import replica_health
from tests.support import (
    JSON,
    assert_replicas_identical,
    assert_stock_adds_up,
    new_key,
    order,
    stock,
)


@pytest.fixture(scope="module")
def store(module_cluster_factory):
    # No restock during these tests: stock arithmetic must be exact.
    return module_cluster_factory(env={"RESTOCK_INTERVAL": "3600"})


def test_order_then_fetch_it_back(store):
    url = store.frontend_url
    reply = requests.post(f"{url}/orders", json={"name": "Fox", "quantity": 2})
    assert reply.status_code == 201
    number = reply.json()["data"]["order_number"]
    assert reply.headers["Location"] == f"/orders/{number}"
    assert isinstance(number, int) and number >= 0
    for path in (f"/orders/{number}", f"/orders/{number}/"):
        got = requests.get(url + path)
        assert got.status_code == 200
        assert got.json() == {"data": {"number": number, "name": "Fox", "quantity": 2}}


def test_trailing_slash_order_route(store):
    reply = requests.post(f"{store.frontend_url}/orders/", json={"name": "Fox", "quantity": 1})
    assert reply.status_code == 201
    assert isinstance(reply.json()["data"]["order_number"], int)


def test_order_numbers_are_contiguous(store):
    session = requests.Session()
    numbers = [
        order(session, store.frontend_url, "Marbles", 1).json()["data"]["order_number"]
        for _ in range(10)
    ]
    assert numbers == list(range(numbers[0], numbers[0] + 10))


def test_read_your_writes_without_waiting(store):
    url = store.frontend_url
    session = requests.Session()
    for _ in range(15):
        before = session.get(f"{url}/products/Frisbee").json()["data"]["quantity"]
        session.get(f"{url}/products/Frisbee")  # now certainly cached
        assert order(session, url, "Frisbee", 2).status_code == 201
        after = session.get(f"{url}/products/Frisbee").json()["data"]["quantity"]
        assert after == before - 2


def test_idempotency_key_buys_once(store):
    url = store.frontend_url
    key = new_key()
    before = stock(url, "Lego")
    first = order(requests, url, "Lego", 3, key)
    second = order(requests, url, "Lego", 3, key)
    assert (first.status_code, second.status_code) == (201, 200)
    assert first.json() == second.json()
    number = first.json()["data"]["order_number"]
    assert first.headers["Location"] == second.headers["Location"] == f"/orders/{number}"
    assert "Idempotent-Replayed" not in first.headers
    assert second.headers["Idempotent-Replayed"] == "true"
    assert stock(url, "Lego") == before - 3


def test_an_idempotency_key_expires_after_its_ttl(cluster_factory):
    cluster = cluster_factory(env={"RESTOCK_INTERVAL": "3600", "IDEMPOTENCY_KEY_TTL": "1"})
    url, key = cluster.frontend_url, new_key()
    before = stock(url, "Lego")
    first = order(requests, url, "Lego", 1, key)
    assert order(requests, url, "Lego", 1, key).status_code == 200  # still deduplicated
    time.sleep(1.2)
    # Expired: the key is free again, for this order or another one.
    second = order(requests, url, "Lego", 2, key)
    assert (first.status_code, second.status_code) == (201, 201)
    numbers = [reply.json()["data"]["order_number"] for reply in (first, second)]
    assert numbers[0] != numbers[1]
    replay = order(requests, url, "Lego", 2, key)
    assert replay.status_code == 200 and replay.json()["data"]["order_number"] == numbers[1]
    assert order(requests, url, "Lego", 1, key).status_code == 422  # the live order is 2 Lego
    assert stock(url, "Lego") == before - 3
    orders = assert_replicas_identical(cluster)
    assert_stock_adds_up(cluster, orders)


def test_idempotency_key_reused_for_another_order_is_refused(store):
    url = store.frontend_url
    key = new_key()
    assert order(requests, url, "Lego", 1, key).status_code == 201
    before = stock(url, "Lego")
    reply = order(requests, url, "Lego", 2, key)
    assert reply.status_code == 422
    assert set(reply.json()["error"]) == {"code", "message"}
    assert stock(url, "Lego") == before


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"name": "NoSuchToy", "quantity": 1}, 404),
        ({"name": "Giraffe", "quantity": 1000}, 400),  # more than in stock
    ],
)
def test_refused_orders_change_nothing(store, body, status):
    url = store.frontend_url
    before = stock(url, "Giraffe")
    reply = requests.post(f"{url}/orders", json=body)
    assert reply.status_code == status
    assert reply.json()["error"]["code"] == status
    assert stock(url, "Giraffe") == before


@pytest.mark.parametrize("path", ["/orders/999999", "/orders/999999/"])
def test_unknown_order_is_404(store, path):
    reply = requests.get(store.frontend_url + path)
    assert reply.status_code == 404
    assert reply.json()["error"]["code"] == 404


def test_fifty_concurrent_buyers_never_oversell(store):
    url = store.frontend_url
    before = stock(url, "Whale")
    barrier = threading.Barrier(50)

    def buy(_):
        session = requests.Session()
        barrier.wait()
        reply = order(session, url, "Whale", 3)
        return reply.status_code, (3 if reply.status_code == 201 else 0)

    with ThreadPoolExecutor(50) as pool:
        results = list(pool.map(buy, range(50)))
    assert {status for status, _ in results} <= {201, 400}
    bought = sum(quantity for _, quantity in results)
    assert bought == 3 * (before // 3)  # every unit that could be sold in 3s was, no more
    assert stock(url, "Whale") == before - bought >= 0


def test_invalidation_reaches_a_subscriber(store):
    client = redis.Redis.from_url(store.redis_url)
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe("toystore:invalidations")
    try:
        pubsub.get_message(timeout=1)  # the subscription's confirmation
        assert order(requests, store.frontend_url, "Tux", 1).status_code == 201
        deadline = time.monotonic() + 5
        seen = []
        while time.monotonic() < deadline:
            message = pubsub.get_message(timeout=0.5)
            if message is not None:
                seen.append(json.loads(message["data"]))
                if seen[-1]["product"] == "Tux":
                    break
        assert seen and seen[-1]["product"] == "Tux", seen
        assert seen[-1]["reason"] == "purchase" and isinstance(seen[-1]["version"], int)
    finally:
        pubsub.close()


def test_an_absurd_term_leaves_ordering_working(store):
    auth = store.internal_headers
    for url in store.replica_urls.values():
        vote = {"term": 2**53 - 1, "candidate_id": 1, "commit_index": 0}
        assert requests.post(f"{url}/raft/vote", json=vote, headers=auth).status_code == 400
    assert order(requests, store.frontend_url, "Tux", 1).status_code == 201
    terms = {h["term"] for h in replica_health(store).values()}
    assert max(terms) < 1000


def test_health_names_the_leader(store):
    data = requests.get(f"{store.frontend_url}/health").json()["data"]
    assert data["leader_id"] == max(store.replica_urls) and isinstance(data["term"], int)
    assert data["redis"] is True and data["cache_enabled"] is True


def test_replicas_hold_identical_orders_and_stock_adds_up(store):
    orders = assert_replicas_identical(store)
    assert len(orders) > 20
    assert_stock_adds_up(store, orders)


# Bad input at a replica's internal endpoints: a 4xx in the error shape, nothing changes.


def entry(index: int, key: str | None = None, **fields) -> dict:
    return {
        "index": index,
        "term": 1,
        "name": "Tux",
        "quantity": 1,
        "key": key or f"k{index}",
    } | fields


def append(**fields) -> dict:
    message = {"term": 1, "leader_id": 3, "prev_index": -1, "prev_term": 0, "entries": []}
    return message | {"commit_index": -1, "to_end": True} | fields


ABSURD = 2**53 - 1
BAD_REPLICA_REQUESTS = [
    ("POST", "/orders", "{not json", 400),
    ("POST", "/orders", "[1, 2]", 400),
    ("POST", "/orders", json.dumps({"name": "Tux", "quantity": 1}), 400),  # no key
    ("POST", "/orders", json.dumps({"name": "Tux", "quantity": "1", "key": "k"}), 400),
    ("POST", "/orders", json.dumps({"name": "Tux", "quantity": True, "key": "k"}), 400),
    ("POST", "/orders", json.dumps({"name": "Tux", "quantity": 0, "key": "k"}), 400),
    ("POST", "/orders", json.dumps({"name": "Tux", "quantity": 1, "key": "bad key!"}), 400),
    ("POST", "/orders", json.dumps({"name": "x" * 500, "quantity": 1, "key": "k"}), 400),
    ("GET", "/orders/-1", None, 400),
    ("GET", "/orders/abc", None, 400),
    ("POST", "/election", json.dumps({"term": "9"}), 400),
    ("POST", "/election", json.dumps({"term": -3}), 400),
    ("POST", "/leader", json.dumps({"leader_id": 3}), 400),
    ("POST", "/raft/vote", json.dumps({"term": 99, "candidate_id": 1}), 400),
    ("POST", "/raft/vote", json.dumps({"term": 1.5, "candidate_id": 1, "commit_index": 0}), 400),
    # Terms and indexes are integers in 0 <= n < 2**53 (indexes may also be -1) ...
    ("POST", "/raft/vote", json.dumps({"term": 2**53, "candidate_id": 1, "commit_index": 0}), 400),
    ("POST", "/raft/vote", json.dumps({"term": True, "candidate_id": 1, "commit_index": 0}), 400),
    ("POST", "/raft/vote", json.dumps({"term": 5, "candidate_id": 1, "commit_index": -2}), 400),
    ("POST", "/raft/vote", json.dumps({"term": 5, "candidate_id": 1, "commit_index": -1.0}), 400),
    ("POST", "/raft/append", json.dumps(append(commit_index=2**60)), 400),
    ("POST", "/election", json.dumps({"term": 2**53}), 400),
    ("POST", "/leader", json.dumps({"leader_id": 1, "term": 10**30}), 400),
    # ... and a valid but absurd term (far above any this replica saw) is refused whole.
    ("POST", "/raft/vote", json.dumps({"term": ABSURD, "candidate_id": 1, "commit_index": 0}), 400),
    ("POST", "/raft/append", json.dumps(append(term=2**53 - 1)), 400),
    ("POST", "/election", json.dumps({"term": 2**53 - 1}), 400),
    ("POST", "/leader", json.dumps({"leader_id": 1, "term": 2**53 - 1}), 400),
    (
        "POST",
        "/raft/append",
        json.dumps(
            {
                "term": 1,
                "leader_id": 3,
                "prev_index": 0,
                "prev_term": 1,
                "entries": [{"index": "0"}],
                "commit_index": 0,
                "to_end": True,
            }
        ),
        400,
    ),
    ("POST", "/raft/append", json.dumps({"term": 1}), 400),
    ("POST", "/raft/append", json.dumps(append(entries=[entry(0), entry(0)])), 400),  # repeated
    ("POST", "/raft/append", json.dumps(append(entries=[entry(0), entry(2)])), 400),  # a gap
    (
        "POST",
        "/raft/append",
        json.dumps(append(entries=[entry(0, key="k"), entry(1, key="k")])),
        400,
    ),
    ("POST", "/raft/append", json.dumps(append(entries=[entry(0, quantity=-1)])), 400),
    ("POST", "/raft/append", json.dumps(append(entries=[entry(0, name="")])), 400),
    ("GET", "/raft/committed?after=x", None, 400),
    ("GET", "/no/such/route", None, 404),
    ("DELETE", "/orders", None, 405),
]


@pytest.mark.parametrize(("method", "path", "body", "status"), BAD_REPLICA_REQUESTS)
def test_bad_input_at_a_replica(store, method, path, body, status):
    replica = store.replica_urls[2]
    before = requests.get(f"{replica}/health").json()["data"]
    headers = {**JSON, **store.internal_headers}
    reply = requests.request(method, replica + path, data=body, headers=headers)
    assert reply.status_code == status
    assert reply.json() == {"error": {"code": status, "message": reply.json()["error"]["message"]}}
    assert isinstance(reply.json()["error"]["message"], str)
    after = requests.get(f"{replica}/health").json()["data"]
    assert (after["term"], after["last_index"]) == (before["term"], before["last_index"])
