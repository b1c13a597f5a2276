"""/health says a process is alive, /ready that it can do its job: checked on every service
of a real stack, and with the faults that must turn /ready to 503 (in the error shape)."""

from __future__ import annotations

import time

import requests

from app.catalog import create_app as catalog_app
from app.common.config import Settings


def _ready(url: str) -> requests.Response:
    return requests.get(f"{url}/ready", timeout=5)


def _wait_status(url: str, status: int, timeout: float = 10.0) -> requests.Response:
    deadline = time.monotonic() + timeout
    while (reply := _ready(url)).status_code != status:
        assert time.monotonic() < deadline, (url, reply.status_code, reply.text)
        time.sleep(0.1)
    return reply


def _not_ready_because(reply: requests.Response, words: str) -> None:
    error = reply.json()["error"]
    assert error["code"] == 503 and words in error["message"], error


def test_every_service_is_alive_and_ready(stack):
    urls = [stack.frontend_url, stack.catalog_url, *stack.replica_urls.values()]
    for url in urls:
        assert requests.get(f"{url}/health", timeout=5).status_code == 200
        _wait_status(url, 200)


def test_replicas_and_front_end_are_not_ready_without_a_quorum(cluster_factory):
    cluster = cluster_factory(env={"RESTOCK_INTERVAL": "3600"})
    _wait_status(cluster.frontend_url, 200)
    cluster.kill("replica-3")  # the leader
    cluster.kill("replica-2")
    _not_ready_because(_wait_status(cluster.replica_urls[1], 503), "no leader heard from")
    _not_ready_because(_wait_status(cluster.frontend_url, 503), "no order leader")
    assert requests.get(f"{cluster.replica_urls[1]}/health", timeout=5).status_code == 200
    cluster.restart("replica-3")
    # The front-end chooses the leader, so it is the first to be asked.
    for url in (cluster.frontend_url, cluster.replica_urls[3], cluster.replica_urls[1]):
        _wait_status(url, 200, timeout=20)


def test_a_leader_that_lost_its_quorum_is_not_ready(cluster_factory):
    cluster = cluster_factory(env={"RESTOCK_INTERVAL": "3600"})
    _wait_status(cluster.frontend_url, 200)
    cluster.kill("replica-1")
    cluster.kill("replica-2")
    _not_ready_because(_wait_status(cluster.replica_urls[3], 503), "too few replicas")


def test_front_end_without_redis_and_catalog_is_not_ready(cluster_factory):
    cluster = cluster_factory(env={"RESTOCK_INTERVAL": "3600"})
    _wait_status(cluster.frontend_url, 200)
    cluster.kill("redis")
    assert _ready(cluster.frontend_url).status_code == 200  # the catalog is the fallback
    cluster.kill("catalog")
    _not_ready_because(_wait_status(cluster.frontend_url, 503), "neither Redis nor the catalog")


def test_catalog_without_its_database_is_not_ready(tmp_path):
    settings = Settings.from_env(
        {"DATA_DIR": str(tmp_path), "RESTOCK_INTERVAL": "3600", "INTERNAL_TOKEN": "t"}
    )
    app = catalog_app(settings)
    client = app.test_client()
    assert client.get("/ready").status_code == 200
    app.extensions["catalog"].store.close()  # as if the file were gone from under it
    reply = client.get("/ready")
    assert reply.status_code == 503
    assert "database cannot be read" in reply.get_json()["error"]["message"]
