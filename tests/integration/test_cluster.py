"""The process harness itself: services start healthy, die completely, and come back."""

from __future__ import annotations

import time
import uuid

import pytest
import redis
import requests

from app.cluster import REDIS_CONF, Cluster, group_members, port_listening, service_names
from app.common.config import Settings
from tests.conftest import ClusterFactory

SERVICES = service_names(Settings().replicas)
_UNITS = {"": 1, "k": 1000, "kb": 1024, "m": 1000**2, "mb": 1024**2, "g": 1000**3, "gb": 1024**3}


def _redis_conf(key: str) -> str:
    for line in REDIS_CONF.read_text().splitlines():
        parts = line.split(None, 1)
        if len(parts) == 2 and parts[0].lower() == key:
            return parts[1].strip()
    raise KeyError(key)


def _redis_bytes(text: str) -> int:
    number = text.rstrip("kmgbKMGB")
    return int(number) * _UNITS[text[len(number) :].lower()]


def test_every_service_is_healthy(stack: Cluster) -> None:
    assert stack.services == SERVICES
    for name in stack.services:
        assert stack.is_healthy(name), name
        if name != "redis":
            reply = requests.get(f"{stack.url(name)}/health", timeout=2)
            assert reply.status_code == 200
            assert "data" in reply.json()


def test_redis_runs_with_the_project_config(stack: Cluster) -> None:
    client = redis.Redis.from_url(stack.redis_url, decode_responses=True)
    assert client.config_get("maxmemory-policy") == {"maxmemory-policy": "allkeys-lru"}
    expected = _redis_bytes(_redis_conf("maxmemory"))
    assert int(client.config_get("maxmemory")["maxmemory"]) == expected
    assert client.config_get("save") == {"save": ""}
    assert client.config_get("appendonly") == {"appendonly": "no"}


@pytest.mark.fault
@pytest.mark.parametrize("name", SERVICES)
def test_sigkill_leaves_nothing_behind_and_restart_recovers(
    cluster_factory: ClusterFactory, name: str
) -> None:
    # Two front-end workers, so the kill has more than one worker to reach.
    cluster = cluster_factory(env={"FRONTEND_WORKERS": "2"})
    port = cluster.specs[name].port
    group = cluster.pid(name)
    assert group is not None
    before = cluster.processes(name)
    if name != "redis":
        assert len(before) >= 2, "expected Gunicorn's master and at least one worker"

    assert port_listening(port)
    cluster.kill(name)

    assert group_members(group) == []
    assert not port_listening(port)
    assert not cluster.is_running(name)

    cluster.restart(name)
    assert cluster.is_healthy(name)
    assert cluster.specs[name].port == port
    assert set(cluster.processes(name)).isdisjoint(before)


@pytest.mark.fault
def test_catalog_keeps_its_stock_across_sigkill(cluster_factory: ClusterFactory) -> None:
    cluster = cluster_factory(services=["redis", "catalog"], env={"RESTOCK_INTERVAL": "3600"})
    purchase = {"key": uuid.uuid4().hex, "name": "Tux", "quantity": 3, "term": 1, "attempt": 0}
    reply = requests.post(
        f"{cluster.catalog_url}/purchases",
        json=purchase,
        headers=cluster.internal_headers,
        timeout=5,
    )
    assert reply.status_code == 200, reply.text
    remaining = reply.json()["data"]["remaining"]

    cluster.kill("catalog")
    cluster.restart("catalog")

    reply = requests.get(
        f"{cluster.catalog_url}/products/Tux", headers=cluster.internal_headers, timeout=5
    )
    assert reply.json()["data"]["quantity"] == remaining


@pytest.mark.fault
def test_replica_keeps_its_orders_across_sigkill(cluster_factory: ClusterFactory) -> None:
    cluster = cluster_factory(env={"RESTOCK_INTERVAL": "3600"})
    # A 503 says "retry with the same key" (a leader may still be settling); a shopper would.
    key = uuid.uuid4().hex
    deadline = time.monotonic() + 30
    while True:
        reply = requests.post(
            f"{cluster.frontend_url}/orders",
            json={"name": "Fox", "quantity": 1},
            headers={"Idempotency-Key": key},
            timeout=20,
        )
        if reply.status_code != 503 or time.monotonic() > deadline:
            break
    assert reply.status_code == 201, reply.text
    number = reply.json()["data"]["order_number"]

    # Replica 1 is a follower (the front-end picks the highest id as leader).
    cluster.kill("replica-1")
    cluster.restart("replica-1")

    deadline = time.monotonic() + 10
    while True:
        health = requests.get(f"{cluster.replica_urls[1]}/health", timeout=2).json()["data"]
        if health["last_index"] >= number:
            break
        assert time.monotonic() < deadline, f"replica 1 did not get order {number}: {health}"
        time.sleep(0.1)
