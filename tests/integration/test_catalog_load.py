"""`toystore catalog load FILE` against a running catalog, and the warning when CATALOG_DATA
meets a database that already holds toys."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import redis
import requests

from app.common.config import Settings

TOYSTORE = str(Path(sys.executable).with_name("toystore"))


def _load(cluster, path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "DATA_DIR": str(cluster.data_dir), "REDIS_URL": cluster.redis_url}
    return subprocess.run(
        [TOYSTORE, "catalog", "load", str(path)], env=env, capture_output=True, text=True
    )


def _status(cluster, path: str) -> int:
    reply = requests.get(cluster.catalog_url + path, headers=cluster.internal_headers, timeout=5)
    return reply.status_code


def _product(cluster, name: str) -> dict:
    return requests.get(
        f"{cluster.catalog_url}/products/{name}", headers=cluster.internal_headers, timeout=5
    ).json()["data"]


def test_load_adds_toys_takes_prices_keeps_stock_and_invalidates(cluster_factory, tmp_path):
    cluster = cluster_factory(services=["redis", "catalog"], env={"RESTOCK_INTERVAL": "3600"})
    requests.post(
        f"{cluster.catalog_url}/purchases",
        json={"key": "k1", "name": "Tux", "quantity": 3, "term": 1, "attempt": 0},
        headers=cluster.internal_headers,
        timeout=5,
    ).raise_for_status()
    watcher = redis.Redis.from_url(cluster.redis_url).pubsub()
    watcher.subscribe(Settings().invalidation_channel)
    file = tmp_path / "more.json"
    file.write_text(
        json.dumps(
            [
                {"name": "Tux", "price": 17.49, "quantity": 100},
                {"name": "Fox", "price": 12.99, "quantity": 100},
                {"name": "Kazoo", "price": 4.99, "quantity": 40},
            ]
        )
    )
    done = _load(cluster, file)
    assert done.returncode == 0, done.stderr
    assert "1 toys added, 1 repriced, 1 unchanged" in done.stdout
    tux = _product(cluster, "Tux")
    assert (tux["price"], tux["quantity"]) == (17.49, 97)  # the purchase's stock is kept
    assert _product(cluster, "Kazoo")["quantity"] == 40
    seen = set()
    deadline = time.monotonic() + 5
    while {"Tux", "Kazoo"} - seen and time.monotonic() < deadline:
        message = watcher.get_message(timeout=0.5)
        if message and message["type"] == "message":
            seen.add(json.loads(message["data"])["product"])
    assert {"Tux", "Kazoo"} <= seen
    assert "Fox" not in seen  # unchanged: nothing to invalidate


def test_load_refuses_a_bad_file_in_one_line(cluster_factory, tmp_path):
    cluster = cluster_factory(services=["redis", "catalog"])
    file = tmp_path / "bad.json"
    file.write_text('[{"name": "Tux"}]')
    done = _load(cluster, file)
    assert done.returncode == 2
    assert done.stderr.startswith("toystore: ") and len(done.stderr.strip().splitlines()) == 1
    assert _product(cluster, "Tux")["price"] == 15.99


def test_catalog_data_on_an_existing_database_is_a_warning(cluster_factory, tmp_path):
    file = tmp_path / "other.json"
    file.write_text(json.dumps([{"name": "Kazoo", "price": 4.99, "quantity": 40}]))
    cluster = cluster_factory(services=["redis", "catalog"])
    cluster.stop_one("catalog")
    cluster.specs["catalog"].env["CATALOG_DATA"] = str(file)
    cluster.start_one("catalog")
    assert _status(cluster, "/products/Kazoo") == 404
    warnings = [
        json.loads(line)
        for line in cluster.log_path("catalog").read_text().splitlines()
        if "CATALOG_DATA not loaded" in line
    ]
    assert warnings and warnings[0]["level"] == "warning"
