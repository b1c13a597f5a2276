"""The store on a Sentinel-managed Redis (a primary, one replica, three Sentinels), all real
processes, through a real failover: the primary is SIGKILLed while the replica's link is down
and it has missed an invalidation, so the replica Sentinel promotes holds a stale product.

Reads must keep answering (from the catalog while there is no primary), and once the failover
is over no read and no cached entry may be stale: the front-end's resubscription to the new
primary flushes it, and the catalog's invalidations reach it. A planted stale entry shows that
the checks would see one.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
import requests

from app.cluster import (
    REDIS_ACL_FILE,
    REDIS_CONF,
    Cluster,
    ClusterError,
    redis_argv,
    redis_server_binary,
    write_redis_acl,
)
from app.common.config import REDIS_USER, Settings
from app.frontend.routes import VERSION_HEADER
from tests.conftest import _clean_env, free_port
from tests.support import NO_RESTOCK, TOYS, order, wait_for

pytestmark = pytest.mark.fault

SERVICE = "toystore-cache"
PASSWORD = "sentinel-test-secret-5f3a"  # distinctive, so that a log holding it is found
PREFIX = Settings.cache_prefix  # CACHE_PREFIX is left at its default
READ_BOUND = 1.0  # seconds: the slowest read allowed, during the failover too
SENTINEL_CONF = """\
port {port}
bind 127.0.0.1
protected-mode no
dir {dir}
sentinel monitor {service} 127.0.0.1 {primary} 2
sentinel down-after-milliseconds {service} 500
sentinel failover-timeout {service} 5000
sentinel parallel-syncs {service} 1
sentinel auth-user {service} {user}
sentinel auth-pass {service} {password}
"""


def product_key(name: str) -> str:
    return f"{PREFIX}:product:{name}"


class Node:
    """One redis-server process (a data node, or a Sentinel) on 127.0.0.1."""

    def __init__(self, argv: list[str], port: int, where: Path, **auth: str) -> None:
        where.mkdir(parents=True, exist_ok=True)
        self.port = port
        self.client = redis.Redis(port=port, socket_timeout=2, socket_connect_timeout=2, **auth)
        self.log = where / "redis.log"
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                argv, cwd=where, env=_clean_env(), stdout=out, stderr=subprocess.STDOUT
            )

    def answers(self) -> bool:
        if self.proc.poll() is not None:
            pytest.skip(f"redis-server on port {self.port} exited: {self.log.read_text()[-500:]}")
        try:
            return bool(self.client.ping())
        except redis.RedisError:
            return False

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)
        self.client.close()


@dataclass
class SentinelSet:
    primary: Node
    replica: Node
    sentinels: list[Node]

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{node.port}" for node in self.sentinels)
        return f"redis+sentinel://{hosts}/{SERVICE}"

    def master_port(self) -> int | None:
        """The primary's port as the first Sentinel that answers names it."""
        for node in self.sentinels:
            try:
                return int(node.client.sentinel_get_master_addr_by_name(SERVICE)[1])
            except (redis.RedisError, TypeError):
                continue
        return None

    def ready(self) -> bool:
        """The replica in sync, and every Sentinel knows it and the two other Sentinels."""
        link = self.replica.client.info("replication").get("master_link_status")
        if link != "up":
            return False
        for node in self.sentinels:
            state = node.client.sentinel_master(SERVICE)
            if state["num-other-sentinels"] != 2 or state["num-slaves"] != 1:
                return False
        return True


@pytest.fixture
def sentinel_set(tmp_path: Path):
    try:
        binary = redis_server_binary()
    except ClusterError as exc:
        pytest.skip(f"sentinel mode cannot run here: {exc}")
    nodes = []

    def data_node(name: str, *extra: str) -> Node:
        where, port = tmp_path / name, free_port()
        write_redis_acl(where / REDIS_ACL_FILE, PASSWORD)
        # Sentinel has the nodes it reconfigures rewrite their config file: their own copy.
        conf = where / "redis.conf"
        shutil.copyfile(REDIS_CONF, conf)
        argv = [*redis_argv(port, "127.0.0.1", where, conf), *extra]
        node = Node(argv, port, where, username=REDIS_USER, password=PASSWORD)
        nodes.append(node)
        return node

    try:
        primary = data_node("primary")
        # The replica logs in to the primary as the store's user; Sentinel promotes it later.
        replica = data_node(
            "replica",
            *("--replicaof", "127.0.0.1", str(primary.port)),
            *("--masteruser", REDIS_USER, "--masterauth", PASSWORD),
        )
        sentinels = []
        for i in range(3):
            where, port = tmp_path / f"sentinel-{i}", free_port()
            where.mkdir()
            conf = where / "sentinel.conf"  # Sentinel rewrites it: a file of its own
            conf.write_text(
                SENTINEL_CONF.format(
                    port=port,
                    dir=where,
                    service=SERVICE,
                    primary=primary.port,
                    user=REDIS_USER,
                    password=PASSWORD,
                )
            )
            sentinels.append(Node([binary, str(conf), "--sentinel"], port, where))
            nodes.append(sentinels[-1])
        group = SentinelSet(primary, replica, sentinels)
        for node in nodes:
            wait_for(node.answers, 10, f"redis-server on port {node.port}")
        wait_for(group.ready, 20, "the replica in sync and the Sentinels knowing each other")
        yield group
    finally:
        for node in nodes:
            node.stop()


@dataclass
class Read:
    started: float  # time.monotonic()
    seconds: float
    status: int  # 0: no answer at all
    name: str
    version: int | None


class Readers:
    """A thread reading every toy through the front-end, round and round, each read on a new
    connection (so that every front-end worker serves some), until stopped."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.reads: list[Read] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run)

    def __enter__(self) -> Readers:
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.is_set():
            for name in TOYS:
                self.reads.append(read(self.url, name))


def read(url: str, name: str) -> Read:
    started = time.monotonic()
    try:
        reply = requests.get(f"{url}/products/{name}", timeout=5)
    except requests.RequestException:
        return Read(started, time.monotonic() - started, 0, name, None)
    version = reply.headers.get(VERSION_HEADER)
    seconds = time.monotonic() - started
    return Read(started, seconds, reply.status_code, name, int(version) if version else None)


def catalog_versions(cluster: Cluster) -> dict[str, int]:
    reply = requests.get(
        f"{cluster.catalog_url}/products", headers=cluster.internal_headers, timeout=5
    )
    return {product["name"]: product["version"] for product in reply.json()["data"]}


def stale_entries(client: redis.Redis, truth: dict[str, int]) -> list[str]:
    """The toys whose entry cached in ``client``'s Redis is not the catalog's version."""
    stale = []
    for name, version in truth.items():
        raw = client.get(product_key(name))
        if raw is not None and json.loads(raw)["version"] != version:
            stale.append(name)
    return stale


def stale_reads(url: str, truth: dict[str, int], rounds: int = 4) -> list[Read]:
    """Reads through the front-end (``rounds`` of every toy) that do not answer the catalog's
    version."""
    reads = [read(url, name) for _ in range(rounds) for name in truth]
    return [r for r in reads if r.status != 200 or r.version != truth[r.name]]


def all_cached(url: str, client: redis.Redis) -> bool:
    for name in TOYS:
        read(url, name)
    return all(client.exists(product_key(name)) for name in TOYS)


def test_a_sentinel_failover_keeps_reads_up_and_serves_nothing_stale(
    sentinel_set: SentinelSet, cluster_factory, record_property
) -> None:
    cluster = cluster_factory(
        env={
            **NO_RESTOCK,
            "REDIS_URL": sentinel_set.url,
            "REDIS_PASSWORD": PASSWORD,
            "FRONTEND_WORKERS": "2",
        },
        replicas=1,
    )
    url = cluster.frontend_url
    primary, replica = sentinel_set.primary.client, sentinel_set.replica.client
    wait_for(lambda: all_cached(url, primary), 15, "every toy cached in the primary")
    stale_tux = primary.get(product_key("Tux"))
    wait_for(lambda: replica.get(product_key("Tux")) == stale_tux, 5, "Tux on the replica")
    subscribed = len(frontend_events(cluster, "cache subscribed"))

    with Readers(url) as readers:
        time.sleep(0.3)
        replica_frozen = kill_the_primary_after_a_missed_invalidation(sentinel_set, url)
        killed = time.monotonic()
        assert replica.get(product_key("Tux")) == stale_tux  # what Sentinel will promote
        for name in ("Fox", "Whale"):  # stock changes while there is no primary
            assert order(requests, url, name, 1).status_code == 201
        wait_for(lambda: sentinel_set.master_port() == sentinel_set.replica.port, 15, "a promotion")
        promoted = time.monotonic()
        wait_for(lambda: resubscribed(cluster, replica, subscribed), 10, "resubscriptions")
        cache_back = time.monotonic()
        wait_for(lambda: all_cached(url, replica), 5, "the cache in use on the new primary")
        # A stock change after the failover: its invalidation must reach the new primary.
        before = catalog_versions(cluster)["Lego"]
        assert order(requests, url, "Lego", 1).status_code == 201
        wait_for(lambda: read(url, "Lego").version == before + 1, 5, "Lego's new version")
        settled = time.monotonic()
        time.sleep(1.0)

    during = [r for r in readers.reads if killed <= r.started < cache_back]
    record_property("replica_frozen_seconds", round(replica_frozen, 3))
    record_property("failover_seconds", round(promoted - killed, 3))
    record_property("cache_back_seconds", round(cache_back - killed, 3))
    record_property("reads_during_failover", len(during))
    assert len(during) > 10
    record_property("slowest_read_during_failover", round(max(r.seconds for r in during), 3))
    assert [r for r in readers.reads if r.status != 200] == []
    slowest = max(readers.reads, key=lambda r: r.seconds)
    assert slowest.seconds < READ_BOUND, slowest

    truth = catalog_versions(cluster)
    late = [r for r in readers.reads if r.started > settled]
    assert late and [r for r in late if r.version != truth[r.name]] == []
    assert stale_reads(url, truth) == []
    assert stale_entries(replica, truth) == []
    assert replica.exists(product_key("Tux"))  # the check above looked at a cached Tux
    flushes = [event["flushed"] for event in frontend_events(cluster, "cache subscribed")]
    assert max(flushes[subscribed:]) > 0  # the stale entries, gone from the new primary
    for name in cluster.services:
        assert PASSWORD not in cluster.log_path(name).read_text(), name

    # The checks catch a stale entry: plant the one the promoted replica held.
    replica.set(product_key("Tux"), stale_tux)
    assert stale_entries(replica, truth) == ["Tux"]
    assert {r.name for r in stale_reads(url, truth)} == {"Tux"}


def kill_the_primary_after_a_missed_invalidation(sentinel_set: SentinelSet, url: str) -> float:
    """Order a Tux, so that the front-end drops Tux's entry in the primary, while the replica
    cannot receive that: its link cut and the replica frozen, so that it cannot reconnect
    (replication is asynchronous); SIGKILL the primary, then thaw the replica. How long the
    replica was frozen (Sentinel must not count it down meanwhile)."""
    primary, replica = sentinel_set.primary, sentinel_set.replica
    held = primary.client.get(product_key("Tux"))
    replica.proc.send_signal(signal.SIGSTOP)
    frozen = time.monotonic()
    assert primary.client.client_kill_filter(_type="replica") == 1
    assert order(requests, url, "Tux", 1).status_code == 201
    wait_for(lambda: primary.client.get(product_key("Tux")) != held, 2, "Tux invalidated")
    primary.proc.kill()
    replica.proc.send_signal(signal.SIGCONT)
    return time.monotonic() - frozen


def resubscribed(cluster: Cluster, primary: redis.Redis, before: int) -> bool:
    """Every front-end worker subscribed on ``primary`` and done with its flush (which it
    logs once subscribed) since ``before`` subscriptions had been logged."""
    workers = cluster.settings.frontend_workers
    [(_, listeners)] = primary.pubsub_numsub(cluster.settings.invalidation_channel)
    subscriptions = len(frontend_events(cluster, "cache subscribed")) - before
    return listeners == workers and subscriptions >= workers


def frontend_events(cluster: Cluster, event: str) -> list[dict]:
    lines = cluster.log_path("frontend").read_text().splitlines()
    entries = [json.loads(line) for line in lines if line.startswith("{")]
    return [entry for entry in entries if entry.get("event") == event]
