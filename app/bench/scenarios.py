"""The measurements of ``toystore bench``. Each starts what it measures on free ports, measures
it with the asyncio load generator, and stops it, so every number comes from the same run."""

from __future__ import annotations

import contextlib
import itertools
import json
import random
import signal
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import requests
from prometheus_client.parser import text_string_to_metric_families

from app.bench.loadgen import LoadResult, run_load
from app.bench.lru import ideal_lru_hits
from app.catalog.catalog_data import write_catalog
from app.cluster import Cluster, free_ports, gunicorn_argv, replica_name
from app.common.redis_client import redis_client

USERS = 16  # the concurrency the targets are stated at


@contextlib.contextmanager
def store(workdir: Path, name: str, **env: str) -> Iterator[Cluster]:
    where = workdir / name
    cluster = Cluster.create(
        data_dir=where / "data", log_dir=where / "logs", free_ports=True, overrides=env
    )
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


def _wait_ok(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(requests.RequestException):
            if requests.get(url, timeout=1).status_code == 200:
                return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not answer within {timeout:.0f}s")
        time.sleep(0.1)


def _warm_orders(url: str, toys: list[str]) -> None:
    session = requests.Session()
    for toy in toys[:4]:
        session.post(f"{url}/orders", json={"name": toy, "quantity": 1}, timeout=10)


def query_load(url: str, seconds: float, users: int = USERS, toy: str = "Tux") -> LoadResult:
    requests.get(f"{url}/products/{toy}", timeout=5)  # fill the cache entry
    path = f"/products/{toy}"
    return run_load(url, lambda _: ("GET", path, None, None), users, seconds)


@contextlib.contextmanager
def ceiling_app(cluster: Cluster) -> Iterator[str]:
    """The ceiling app on a free port, with the front-end's Gunicorn settings and the
    cluster's Redis; yields its URL."""
    (port,) = free_ports(1)
    argv = gunicorn_argv("frontend", cluster.settings, port, app_module="app.bench.ceiling")
    env = {**cluster.specs["frontend"].env, "REDIS_URL": cluster.redis_url}
    proc = subprocess.Popen(argv, env=env, start_new_session=True, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ok(f"{url}/products/Tux")
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)


def query_comparison(workdir: Path, seconds: float, rounds: int) -> dict[str, LoadResult]:
    """Cached queries, the ceiling and cache-off queries, measured in alternating short rounds
    while all three run side by side; each keeps its best round. Load from anything else on
    the machine then falls on all three alike, which keeps their ratios honest."""
    best: dict[str, LoadResult] = {}
    with (
        store(workdir, "cache-on") as cached,
        store(workdir, "cache-off", CACHE_ENABLED="0") as uncached,
        ceiling_app(cached) as ceiling_url,
    ):
        targets = {
            "ceiling": ceiling_url,
            "cached": cached.frontend_url,
            "uncached": uncached.frontend_url,
        }
        for _ in range(rounds):
            for name, url in targets.items():
                result = query_load(url, seconds / rounds)
                if name not in best or result.throughput > best[name].throughput:
                    best[name] = result
    return best


def order_factory(toys: list[str]):
    counter = itertools.count()

    def factory(_: int):
        toy = toys[next(counter) % len(toys)]
        return "POST", "/orders", {"name": toy, "quantity": 1}, None

    return factory


def big_catalog(workdir: Path, count: int) -> tuple[Path, list[str]]:
    path = workdir / f"catalog-{count}.json"
    write_catalog(path, count)
    names = [toy["name"] for toy in json.loads(path.read_text())]
    return path, names


def orders(workdir: Path, seconds: float, users_list: list[int]) -> dict[int, LoadResult]:
    """Order throughput and latency at several concurrencies, every order majority-committed."""
    catalog, names = big_catalog(workdir, 2000)
    results = {}
    with store(workdir, "orders", CATALOG_DATA=str(catalog), RESTOCK_INTERVAL="1") as cluster:
        _warm_orders(cluster.frontend_url, names)
        for users in users_list:
            results[users] = run_load(cluster.frontend_url, order_factory(names), users, seconds)
    return results


def invalidation_lag(workdir: Path, samples: int = 200) -> list[float]:
    """Milliseconds from sending a purchase to the catalog to the cache entry being deleted.

    Redis keyspace notifications tell when the entry goes; the clock starts before the
    purchase request is sent, so this is an upper bound on the commit-to-gone time.
    """
    lags = []
    with store(workdir, "lag", RESTOCK_INTERVAL="1") as cluster:
        client = redis_client(cluster.redis_url, timeout=10)
        client.config_set("notify-keyspace-events", "Kg")
        session = requests.Session()
        toys = ["Tux", "Whale", "Fox", "Python", "Lego", "Frisbee"]
        for i in range(samples):
            toy = toys[i % len(toys)]
            key = f"toystore:product:{toy}"
            while not client.exists(key):
                session.get(f"{cluster.frontend_url}/products/{toy}", timeout=5)
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            pubsub.subscribe(f"__keyspace@0__:{key}")
            pubsub.get_message(timeout=1)
            body = {"key": uuid.uuid4().hex, "name": toy, "quantity": 1, "term": 0, "attempt": 0}
            started = time.perf_counter()
            session.post(
                f"{cluster.catalog_url}/purchases",
                json=body,
                headers=cluster.internal_headers,
                timeout=5,
            )
            while (message := pubsub.get_message(timeout=2)) is not None:
                if message["data"] in (b"del", b"unlink"):
                    lags.append((time.perf_counter() - started) * 1000)
                    break
            pubsub.close()
    return lags


def failover_pause(workdir: Path, seconds: float = 8.0, kill_at: float = 3.0) -> dict:
    """The longest order latency around a SIGKILL of the leader, and the errors clients saw."""
    catalog, names = big_catalog(workdir, 2000)
    with store(workdir, "failover", CATALOG_DATA=str(catalog), RESTOCK_INTERVAL="1") as cluster:
        _warm_orders(cluster.frontend_url, names)
        # The front-end's rule makes the highest id the leader.
        leader = replica_name(max(cluster.replica_urls))
        killer = threading.Timer(kill_at, cluster.kill, args=(leader,))
        killer.start()
        result = run_load(cluster.frontend_url, order_factory(names), USERS, seconds)
        killer.join()
    return {
        "max_order_ms": round(result.percentile(1.0), 1),
        "p50_ms": round(result.percentile(0.5), 2),
        "orders": result.ok,
        "client_errors": result.errors + sum(n for s, n in result.statuses.items() if s >= 300),
    }


def worker_scaling(workdir: Path, seconds: float, workers_list: list[int]) -> dict[int, LoadResult]:
    results = {}
    for workers in workers_list:
        with store(workdir, f"workers-{workers}", FRONTEND_WORKERS=str(workers)) as cluster:
            results[workers] = query_load(cluster.frontend_url, seconds)
    return results


def _paths_in_turn(paths: list[str]):
    sequence = iter(paths)

    def factory(_: int):
        return "GET", next(sequence, paths[0]), None, None

    return factory


def zipf_hit_ratio(
    workdir: Path, headroom_list: list[int], requests_per_point: int = 20000, s: float = 1.1
) -> dict[str, dict]:
    """Cache hit ratio for a 10,000-toy catalog whose popularity follows Zipf(s), with Redis's
    maxmemory set to its own baseline use plus each headroom (bytes) in turn, against an exact
    LRU holding as many entries as Redis held at the end of the point.

    Hits are the front-end's own count (``toystore_frontend_cache_lookups_total``).
    """
    catalog, names = big_catalog(workdir, 10000)
    weights = [1 / (rank**s) for rank in range(1, len(names) + 1)]
    picks = random.Random(7).choices(names, weights=weights, k=requests_per_point)
    results = {}
    with store(workdir, "zipf", CATALOG_DATA=str(catalog), RESTOCK_INTERVAL="3600") as cluster:
        client = redis_client(cluster.redis_url, timeout=10)
        products = f"{cluster.settings.cache_prefix}:product:*"
        for headroom in headroom_list:
            client.flushdb()
            client.config_set("maxmemory", client.info("memory")["used_memory"] + headroom)
            client.config_resetstat()
            hits_before = cache_hits(cluster.frontend_url)
            run_load(
                cluster.frontend_url,
                _paths_in_turn([f"/products/{quote(name)}" for name in picks]),
                USERS,
                seconds=3600,
                stop_after=len(picks),
            )
            hits = cache_hits(cluster.frontend_url) - hits_before
            held = sum(1 for _ in client.scan_iter(match=products, count=1000))
            ideal = ideal_lru_hits(picks, held) / len(picks)
            ratio = hits / len(picks)
            results[f"{headroom // 1024} KiB"] = {
                "hit_ratio": round(ratio, 3),
                "ideal_lru": round(ideal, 3),
                "vs_ideal": round(ratio / ideal, 3) if ideal else None,
                "entries": held,
                "evicted_keys": client.info("stats")["evicted_keys"],
            }
    return results


def cache_hits(frontend_url: str) -> float:
    """The front-end's cache hits so far, summed over its workers, from its /metrics."""
    text = requests.get(f"{frontend_url}/metrics", timeout=10).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "toystore_frontend_cache_lookups_total"
        and sample.labels.get("result") == "hit"
    )


def scratch_dir() -> Path:
    return Path(tempfile.mkdtemp(prefix="toystore-bench-"))
