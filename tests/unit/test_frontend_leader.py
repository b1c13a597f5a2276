"""OrderRouter against small HTTP replicas that follow the replica contract (docs/design.md).

The stand-in replicas share one order log and can be told to refuse (421), to be busy (503),
to reject a term (409) or to go away, so each failover path runs deterministically.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from flask import Flask, request
from werkzeug.serving import make_server

from app.common.config import Settings
from app.common.errors import ApiError, error_response, ok
from app.frontend.cache import ProductCache
from app.frontend.leader import DEADLINE_MESSAGE, OrderRouter
from tests.conftest import free_port


class Replica:
    def __init__(self, rid: int, log: list[dict]) -> None:
        self.rid = rid
        self.log = log
        self.role, self.term, self.ready = "follower", 0, True
        self.elections: list[int] = []
        self.notices: list[dict] = []
        self.order_keys: list[str] = []
        self.busy = 0  # answer this many orders with 503
        self.refuse_terms_up_to = 0  # 409 for an election term at or below this
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = None
        self.lock = threading.Lock()
        self.app = self._build()

    def _build(self) -> Flask:
        app = Flask(f"replica{self.rid}")

        @app.get("/health")
        def health():
            return ok(
                {
                    "id": self.rid,
                    "role": self.role,
                    "term": self.term,
                    "leader_id": None,
                    "ready": self.ready,
                }
            )

        @app.post("/election")
        def election():
            term = request.get_json()["term"]
            with self.lock:
                self.elections.append(term)
                if term <= max(self.term, self.refuse_terms_up_to):
                    return error_response(409, f"term {term} is not above {self.term}")
                self.role, self.term = "leader", term
            return ok({"leader_id": self.rid, "term": term})

        @app.post("/leader")
        def leader():
            self.notices.append(request.get_json())
            return ok({})

        @app.post("/orders")
        def place():
            body = request.get_json()
            self.order_keys.append(body["key"])
            if self.role != "leader":
                return error_response(421, "not the leader")
            if self.busy:
                self.busy -= 1
                return error_response(503, "cannot commit now")
            if body["name"] == "Unicorn":
                return error_response(404, "There is no toy called 'Unicorn'.")
            with self.lock:
                for entry in self.log:
                    if entry["key"] == body["key"]:
                        return ok({"order_number": entry["index"]})
                self.log.append({"index": len(self.log), **body})
                return ok({"order_number": len(self.log) - 1})

        @app.get("/orders/<int:n>")
        def get(n: int):
            if self.role != "leader":
                return error_response(421, "not the leader")
            if n >= len(self.log):
                return error_response(404, "no such order")
            entry = self.log[n]
            return ok({"number": n, "name": entry["name"], "quantity": entry["quantity"]})

        return app

    def start(self) -> None:
        self.server = make_server("127.0.0.1", self.port, self.app, threaded=True)
        threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


@pytest.fixture
def replicas() -> Iterator[dict[int, Replica]]:
    log: list[dict] = []
    replicas = {rid: Replica(rid, log) for rid in (1, 2, 3)}
    for replica in replicas.values():
        replica.start()
    yield replicas
    for replica in replicas.values():
        replica.stop()


def make_router(replicas: dict[int, Replica], deadline: float = 3.0) -> OrderRouter:
    settings = Settings(
        replicas={rid: r.url for rid, r in replicas.items()},
        cache_enabled=False,
        http_timeout=0.5,
        order_deadline=deadline,
    )
    return OrderRouter(settings, ProductCache(settings))


@pytest.fixture
def router(replicas) -> Iterator[OrderRouter]:
    router = make_router(replicas)
    yield router
    router.close()


def wait_for(condition, timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline
        time.sleep(0.01)


def test_highest_replica_is_elected_and_everyone_is_told(router, replicas):
    replicas[2].term = 4
    assert router.place_order("Tux", 2, "key-1") == 0
    assert router.leader == (3, 5)
    assert replicas[3].elections == [5], "the term is above every term seen"
    for replica in replicas.values():
        wait_for(lambda r=replica: r.notices == [{"leader_id": 3, "term": 5}])


def test_a_replica_already_leading_is_used_without_an_election(router, replicas):
    replicas[3].role, replicas[3].term = "leader", 7
    router.place_order("Tux", 1, "key-1")
    assert router.leader == (3, 7)
    assert replicas[3].elections == []


def test_leader_crash_fails_over_with_the_same_key(router, replicas):
    assert router.place_order("Tux", 1, "key-1") == 0
    replicas[3].stop()
    assert router.place_order("Fox", 1, "key-2") == 1
    assert router.leader == (2, 2)
    assert replicas[2].order_keys == ["key-2"]


def test_deposed_leader_421_makes_the_router_reselect_and_retry(router, replicas):
    router.place_order("Tux", 1, "key-1")
    replicas[3].role = "follower"  # deposed behind the router's back; still the highest
    assert router.place_order("Tux", 1, "key-2") == 1
    assert replicas[3].order_keys == ["key-1", "key-2", "key-2"]
    assert router.leader == (3, 2)


def test_busy_leader_is_retried_with_the_same_key(router, replicas):
    replicas[3].role, replicas[3].term = "leader", 1
    replicas[3].busy = 2
    assert router.place_order("Tux", 1, "key-1") == 0
    assert replicas[3].order_keys == ["key-1"] * 3
    assert len(replicas[3].log) == 1


def test_retry_with_the_same_key_returns_the_same_number(router):
    first = router.place_order("Tux", 1, "same")
    assert router.place_order("Tux", 1, "same") == first


def test_election_conflict_retries_with_a_higher_term(router, replicas):
    replicas[3].refuse_terms_up_to = 1
    router.place_order("Tux", 1, "key-1")
    assert replicas[3].elections == [1, 2]
    assert router.leader == (3, 2)


def test_replica_refusals_reach_the_client(router):
    with pytest.raises(ApiError) as refused:
        router.place_order("Unicorn", 1, "key-1")
    assert refused.value.status == 404
    assert "Unicorn" in refused.value.message
    with pytest.raises(ApiError) as missing:
        router.get_order(5)
    assert missing.value.status == 404


def test_get_order_follows_the_leader(router, replicas):
    router.place_order("Tux", 2, "key-1")
    replicas[3].stop()
    assert router.get_order(0) == {"number": 0, "name": "Tux", "quantity": 2}
    assert router.leader == (2, 2)


def test_concurrent_requests_share_one_selection(router, replicas):
    threads = [
        threading.Thread(target=router.place_order, args=("Tux", 1, f"key-{i}")) for i in range(12)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert replicas[3].elections == [1]
    assert sorted(entry["index"] for entry in replicas[3].log) == list(range(12))


def test_no_replica_answers_within_the_deadline_is_503(replicas):
    for replica in replicas.values():
        replica.stop()
    router = make_router(replicas, deadline=0.4)
    try:
        started = time.monotonic()
        with pytest.raises(ApiError) as failed:
            router.place_order("Tux", 1, "key-1")
        assert failed.value.status == 503
        assert failed.value.message == DEADLINE_MESSAGE
        assert time.monotonic() - started < 1.5
        assert router.leader is None
    finally:
        router.close()


def test_a_placed_order_drops_the_cached_toy_before_returning(replicas, redis_url):
    settings = Settings(
        replicas={rid: r.url for rid, r in replicas.items()},
        redis_url=redis_url,
        http_timeout=0.5,
    )
    cache = ProductCache(settings)
    cache.start()
    router = OrderRouter(settings, cache)
    try:
        assert cache.wait_subscribed(5)
        cache.get("Tux", lambda name: {"name": name, "price": 1.0, "quantity": 5, "version": 1})
        assert cache.lookup("Tux") is not None
        router.place_order("Tux", 1, "key-1")
        assert cache.lookup("Tux") is None
    finally:
        router.close()
        cache.close()
