"""Clusters of 1, 3, 5 and 7 order replicas, as ORDER_REPLICAS names them, end to end."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from app.cluster import ROOT, free_ports, port_listening
from app.observe import replica_health
from app.orders.log import replica_log_path
from tests.conftest import ClusterFactory, _clean_env
from tests.support import assert_replicas_identical, new_key, order

# Small processes: seven replicas and the rest share two cores with the other tests.
LEAN = {"SERVICE_THREADS": "4", "FRONTEND_WORKERS": "1", "RESTOCK_INTERVAL": "3600"}
TOYS = ["Tux", "Whale", "Fox", "Lego"]


@pytest.mark.parametrize("count", [1, 3, 5, 7])
def test_orders_commit_on_every_replica(cluster_factory: ClusterFactory, count: int) -> None:
    cluster = cluster_factory(env=LEAN, replicas=count)
    ids = sorted(cluster.replica_urls)
    assert ids == list(range(1, count + 1))
    assert [name for name in cluster.services if name.startswith("replica-")] == [
        f"replica-{rid}" for rid in ids
    ]

    url = cluster.frontend_url
    session = requests.Session()
    placed = {}
    for i in range(2 * count + 2):
        name, quantity, key = TOYS[i % len(TOYS)], 1 + i % 3, new_key()
        reply = order(session, url, name, quantity, key)
        assert reply.status_code == 201, reply.text
        placed[reply.json()["data"]["order_number"]] = (name, quantity, key)
    assert sorted(placed) == list(range(len(placed)))
    for number, (name, quantity, _) in placed.items():
        got = session.get(f"{url}/orders/{number}")
        assert got.json() == {"data": {"number": number, "name": name, "quantity": quantity}}

    # The highest id leads, every replica knows it, and all hold the same orders.
    front = session.get(f"{url}/health").json()["data"]
    assert front["leader_id"] == max(ids)
    orders = assert_replicas_identical(cluster)
    assert {number: (name, quantity, key) for number, name, quantity, key in orders} == placed
    health = replica_health(cluster)
    assert sorted(health) == ids
    for rid, data in health.items():
        assert data["id"] == rid
        assert (data["leader_id"], data["term"]) == (max(ids), front["term"]), data
        assert replica_log_path(cluster.data_dir, rid).is_file()


def _wait_for_order(
    proc: subprocess.Popen[bytes], url: str, timeout: float = 60.0
) -> requests.Response:
    deadline = time.monotonic() + timeout
    while True:
        assert proc.poll() is None, f"toystore up exited with {proc.returncode}"
        try:
            reply = order(requests, url, "Tux", 1)
            if reply.status_code == 201:
                return reply
        except requests.RequestException:
            pass
        assert time.monotonic() < deadline, "the store took no order in time"
        time.sleep(0.2)


def test_toystore_up_starts_every_replica_of_order_replicas(tmp_path: Path) -> None:
    frontend, catalog, redis_port, *replica_ports = free_ports(8)
    replicas = dict(enumerate(replica_ports, start=1))
    env = {
        **_clean_env(),
        **LEAN,
        "FRONTEND_PORT": str(frontend),
        "CATALOG_PORT": str(catalog),
        "REDIS_PORT": str(redis_port),
        "ORDER_REPLICAS": ",".join(f"{i}=http://127.0.0.1:{p}" for i, p in replicas.items()),
    }
    data_dir = tmp_path / "data"
    argv = [sys.executable, "-m", "app.cli", "up", "--data-dir", str(data_dir)]
    argv += ["--log-dir", str(tmp_path / "logs")]
    proc = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=subprocess.PIPE)
    try:
        placed = _wait_for_order(proc, f"http://127.0.0.1:{frontend}")
        assert placed.json()["data"]["order_number"] == 0
        for rid, port in replicas.items():
            health = requests.get(f"http://127.0.0.1:{port}/health", timeout=2).json()["data"]
            assert health["id"] == rid, health
            assert replica_log_path(data_dir, rid).is_file()
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0
    listed = out.decode()
    for rid, port in replicas.items():
        assert f"replica-{rid}" in listed and f":{port}" in listed
        assert not port_listening(port)
