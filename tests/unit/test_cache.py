"""The product cache against a real Redis: hits, leases, invalidation, resubscription, outages."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from prometheus_client import REGISTRY

from app.common import invalidation
from app.common.config import Settings
from app.frontend.cache import ProductCache
from tests.conftest import free_port

CHANNEL = "test:invalidations"
PREFIX = Settings().cache_prefix


class Catalog:
    """A stand-in for the catalog service: a dict of products, counting reads."""

    def __init__(self) -> None:
        self.products = {"Tux": {"name": "Tux", "price": 15.99, "quantity": 100, "version": 1}}
        self.reads = 0

    def load(self, name: str) -> dict | None:
        self.reads += 1
        product = self.products.get(name)
        return dict(product) if product else None

    def buy(self, name: str, quantity: int) -> None:
        product = self.products[name]
        product["quantity"] -= quantity
        product["version"] += 1


def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


def make_cache(url: str, **overrides) -> ProductCache:
    settings = Settings(
        redis_url=url,
        invalidation_channel=CHANNEL,
        redis_timeout=0.3,
        lease_ttl_ms=5000,
        **overrides,
    )
    return ProductCache(settings)


@pytest.fixture
def server(redis_url: str) -> redis.Redis:
    return redis.Redis.from_url(redis_url)


@pytest.fixture
def cache(redis_url: str) -> Iterator[ProductCache]:
    cache = make_cache(redis_url)
    cache.start()
    assert cache.wait_subscribed(5)
    yield cache
    cache.close()


@pytest.fixture
def catalog() -> Catalog:
    return Catalog()


def publish(server: redis.Redis, name: str, version: int) -> None:
    """What the catalog's publisher does for a change: the script that deletes the toy's
    entry and lease and announces it."""
    keys = [invalidation.product_key(PREFIX, name), invalidation.lease_key(PREFIX, name)]
    message = invalidation.message(name, version, "purchase")
    server.register_script(invalidation.INVALIDATE)(keys=keys, args=[CHANNEL, message])


def test_miss_fills_then_hit_serves_from_redis(cache, catalog, server):
    assert cache.get("Tux", catalog.load)["quantity"] == 100
    assert server.exists(cache.product_key("Tux"))
    assert not server.exists(cache.lease_key("Tux")), "a completed fill releases its lease"
    assert cache.get("Tux", catalog.load)["quantity"] == 100
    assert catalog.reads == 1


def test_unknown_toy_is_not_cached(cache, catalog, server):
    assert cache.get("Nope", catalog.load) is None
    assert cache.get("Nope", catalog.load) is None
    assert catalog.reads == 2
    assert not server.exists(cache.product_key("Nope"))


def test_value_read_before_an_invalidation_is_never_stored_after_it(cache, catalog, server):
    token = cache.begin_fill("Tux")
    stale = catalog.load("Tux")
    catalog.buy("Tux", 3)
    publish(server, "Tux", 2)
    wait_for(lambda: not server.exists(cache.lease_key("Tux")))
    assert cache.finish_fill("Tux", token, stale) is False
    assert not server.exists(cache.product_key("Tux"))
    assert cache.get("Tux", catalog.load)["quantity"] == 97


def test_invalidation_during_the_catalog_read_skips_the_fill(cache, catalog, server):
    def load_then_change(name: str) -> dict | None:
        product = catalog.load(name)
        catalog.buy(name, 1)
        publish(server, name, 2)
        wait_for(lambda: not server.exists(cache.lease_key(name)))
        return product

    assert cache.get("Tux", load_then_change)["quantity"] == 100
    assert not server.exists(cache.product_key("Tux"))
    assert cache.get("Tux", catalog.load)["quantity"] == 99


def test_a_newer_filler_takes_over_the_lease(cache, catalog):
    first = cache.begin_fill("Tux")
    second = cache.begin_fill("Tux")
    assert cache.finish_fill("Tux", first, catalog.load("Tux")) is False
    assert cache.finish_fill("Tux", second, catalog.load("Tux")) is True


def test_concurrent_fills_agree_with_the_catalog(cache, catalog, server):
    barrier = threading.Barrier(16)
    results: list[dict | None] = []

    def reader() -> None:
        barrier.wait()
        results.append(cache.get("Tux", catalog.load))

    threads = [threading.Thread(target=reader) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [r["quantity"] for r in results] == [100] * 16
    assert json.loads(server.get(cache.product_key("Tux")))["quantity"] == 100


def test_own_invalidate_gives_read_your_writes(cache, catalog):
    cache.get("Tux", catalog.load)
    catalog.buy("Tux", 5)
    cache.invalidate("Tux")
    assert cache.get("Tux", catalog.load)["quantity"] == 95


def test_published_invalidation_removes_the_entry(cache, catalog, server):
    cache.get("Tux", catalog.load)
    publish(server, "Tux", 2)
    wait_for(lambda: not server.exists(cache.product_key("Tux")))


def test_unreadable_message_flushes_everything(cache, catalog, server):
    cache.get("Tux", catalog.load)
    server.publish(CHANNEL, "not json")
    wait_for(lambda: not server.exists(cache.product_key("Tux")))


def test_resubscription_flushes_cached_products(cache, catalog, server):
    cache.get("Tux", catalog.load)
    other = "unrelated:key"
    server.set(other, "kept")
    server.execute_command("CLIENT", "KILL", "TYPE", "pubsub")
    # Stock changes while the subscription is down and its invalidation is lost: no message
    # is published here, so only the flush on resubscribing can remove the stale entry.
    catalog.buy("Tux", 10)
    wait_for(lambda: cache.subscribed and not server.exists(cache.product_key("Tux")))
    assert server.get(other) == b"kept"
    assert cache.get("Tux", catalog.load)["quantity"] == 90


def test_redis_down_serves_from_the_catalog_and_recovers(tmp_path: Path, catalog):
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    cache = make_cache(url)
    cache.start()
    try:
        # Nothing listens on the port yet: every lookup goes to the catalog.
        assert not cache.wait_subscribed(0.3)
        assert cache.get("Tux", catalog.load)["quantity"] == 100
        cache.invalidate("Tux")
        assert cache.ping() is False
        proc = subprocess.Popen(
            [
                shutil.which("redis-server") or "redis-server",
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--dir",
                str(tmp_path),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            assert cache.wait_subscribed(10), "caching resumes once Redis is back"
            cache.get("Tux", catalog.load)
            reads = catalog.reads
            assert cache.get("Tux", catalog.load)["quantity"] == 100
            assert catalog.reads == reads, "served from Redis again"
            proc.kill()
            proc.wait()
            wait_for(lambda: not cache.subscribed)
            catalog.buy("Tux", 1)
            assert cache.get("Tux", catalog.load)["quantity"] == 99
        finally:
            proc.kill()
            proc.wait()
    finally:
        cache.close()


def test_a_silent_redis_costs_one_timeout_then_nothing(catalog):
    """Redis cut off (it accepts, never answers): the first read pays the Redis timeout and
    switches the worker to the catalog; later reads and the invalidation after an order pay
    nothing, since the cache is flushed before it is used again."""
    silent = socket.create_server(("127.0.0.1", 0))
    cache = make_cache(f"redis://127.0.0.1:{silent.getsockname()[1]}/0")
    try:
        cache._subscribed.set()  # as if subscribed before the cut
        start = time.monotonic()
        assert cache.get("Tux", catalog.load)["quantity"] == 100
        assert 0.25 < time.monotonic() - start < 1.0
        start = time.monotonic()
        assert cache.get("Tux", catalog.load)["quantity"] == 100
        cache.invalidate("Tux")
        assert time.monotonic() - start < 0.1
    finally:
        cache.close()
        silent.close()


def test_cache_disabled_never_touches_redis(redis_url, catalog, server):
    cache = make_cache(redis_url, cache_enabled=False)
    cache.start()
    try:
        assert cache.get("Tux", catalog.load)["quantity"] == 100
        cache.invalidate("Tux")
        assert server.dbsize() == 0
        assert not cache.subscribed
        assert server.pubsub_numsub(CHANNEL) == [(CHANNEL.encode(), 0)]
    finally:
        cache.close()


def test_lru_eviction_keeps_reads_correct(cache, server):
    assert server.config_get("maxmemory-policy") == {"maxmemory-policy": "allkeys-lru"}
    products = {
        f"Toy{i}": {"name": f"Toy{i}", "price": 1.5, "quantity": i, "version": 1, "pad": "x" * 4000}
        for i in range(600)
    }
    server.config_set("maxmemory", str(2 * 1024 * 1024))
    for name in products:
        cache.get(name, lambda n: products.get(n))
    assert int(server.info("stats")["evicted_keys"]) > 0
    for name in ("Toy0", "Toy300", "Toy599"):
        assert cache.get(name, lambda n: products.get(n))["quantity"] == products[name]["quantity"]


def test_a_full_redis_refuses_fills_without_taking_the_cache_out_of_use(cache, catalog, server):
    """At maxmemory with nothing to evict Redis answers OOM to writes: that read goes
    uncached, and the cache is neither flushed nor bypassed (the ratio must not fall to 0)."""
    assert cache.get("Tux", catalog.load)["version"] == 1  # cached before Redis fills up
    server.config_set("maxmemory-policy", "noeviction")  # nothing may be evicted: OOM at once
    server.config_set("maxmemory", "1")
    try:
        catalog.products["Kite"] = {"name": "Kite", "price": 3.0, "quantity": 5, "version": 1}
        refused_before = _fills("refused")
        for _ in range(3):
            assert cache.get("Kite", catalog.load)["quantity"] == 5
        assert _fills("refused") == refused_before + 3
        assert cache.usable  # still subscribed: no flush, no resync
        reads = catalog.reads
        assert cache.get("Tux", catalog.load)["version"] == 1
        assert catalog.reads == reads  # Tux is still served from Redis
    finally:
        server.config_set("maxmemory", "0")
        server.config_set("maxmemory-policy", "allkeys-lru")
    assert cache.get("Kite", catalog.load) and server.exists(cache.product_key("Kite"))


def _fills(result: str) -> float:
    return REGISTRY.get_sample_value("toystore_frontend_cache_fills_total", {"result": result}) or 0
