"""Seeing into a real stack: /metrics on every service (summed over the front-end's Gunicorn
workers), an X-Request-ID followed through the services' logs, and every log line JSON."""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from app.cluster import Cluster, replica_name
from app.common.config import Settings
from app.observe import current_leader, wait_converged
from tests.support import NO_RESTOCK

ROOT = Path(__file__).resolve().parents[2]
WORKERS = 4
ORDERS_CREATED = {"route": "/orders", "method": "POST", "status": "201"}
PRODUCT_READS = {"route": "/products/<name>", "method": "GET", "status": "200"}
APP_SERVICES = ("frontend", "catalog", "replica-1", "replica-2", "replica-3")


@pytest.fixture(scope="module")
def store(module_cluster_factory) -> Cluster:
    cluster = module_cluster_factory(env={**NO_RESTOCK, "FRONTEND_WORKERS": str(WORKERS)})
    assert requests.get(f"{cluster.frontend_url}/ready", timeout=10).status_code == 200
    return cluster


def scrape(url: str) -> dict[tuple[str, frozenset], float]:
    """Every sample of a service's /metrics (parsed as Prometheus text), by name and labels."""
    reply = requests.get(f"{url}/metrics", timeout=5)
    assert reply.status_code == 200
    assert reply.headers["Content-Type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(reply.text)
        for sample in family.samples
    }


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def requests_served(samples: dict, service: str, labels: dict[str, str]) -> float:
    return value(samples, "toystore_http_requests_total", service=service, **labels)


def place_order(store: Cluster, request_id: str | None = None) -> requests.Response:
    headers = {"X-Request-ID": request_id} if request_id else {}
    reply = requests.post(
        f"{store.frontend_url}/orders",
        json={"name": "Tux", "quantity": 1},
        headers=headers,
        timeout=10,
    )
    assert reply.status_code == 201, reply.text
    return reply


def log_lines(store: Cluster, name: str) -> list[str]:
    return store.log_path(name).read_text().splitlines()


def wait_logged(store: Cluster, name: str, request_id: str, path: str) -> list[dict]:
    """The lines of a service's log that carry ``request_id``, once the access line of its
    request for ``path`` is among them (written just after the reply went out)."""
    deadline = time.monotonic() + 5
    while True:
        found = [json.loads(line) for line in log_lines(store, name) if request_id in line]
        if any(line.get("path") == path for line in found) or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def test_every_service_exposes_metrics_that_move_with_an_order(store):
    leader = current_leader(store)
    urls = {name: store.url(name) for name in APP_SERVICES}
    before = {name: scrape(url) for name, url in urls.items()}

    number = place_order(store).json()["data"]["order_number"]
    assert wait_converged(store, timeout=10)
    after = {name: scrape(url) for name, url in urls.items()}

    assert (
        requests_served(after["frontend"], "frontend", ORDERS_CREATED)
        == requests_served(before["frontend"], "frontend", ORDERS_CREATED) + 1
    )
    purchases = "toystore_catalog_stock_changes_total"
    assert (
        value(after["catalog"], purchases, reason="purchase")
        == value(before["catalog"], purchases, reason="purchase") + 1
    )
    leader_name = replica_name(leader)
    assert value(after[leader_name], "toystore_replica_commit_index") == number
    assert value(before[leader_name], "toystore_replica_commit_index") == number - 1
    for rid in store.replica_urls:
        samples = after[replica_name(rid)]
        assert value(samples, "toystore_replica_role", role="leader") == (rid == leader)
        assert value(samples, "toystore_replica_last_index") == number
    assert value(after["frontend"], "toystore_frontend_leader_id") == leader
    assert (
        value(after["frontend"], "toystore_frontend_leader_term")
        == value(after[leader_name], "toystore_replica_term")
        > 0
    )


def test_commit_latency_replication_lag_fills_and_invalidation_lag_are_measured(store):
    leader = replica_name(current_leader(store))
    front, lead = store.url("frontend"), store.url(leader)
    commits = value(scrape(lead), "toystore_replica_commit_seconds_count")
    requests.get(f"{store.frontend_url}/products/Kite", timeout=5)  # a miss, then a fill
    place_order(store)
    assert wait_converged(store, timeout=10)
    deadline = time.monotonic() + 5
    while value(scrape(front), "toystore_frontend_invalidation_lag_seconds_count") == 0:
        assert time.monotonic() < deadline, "no invalidation's lag was measured"
        time.sleep(0.1)
    samples = scrape(front)
    assert value(samples, "toystore_frontend_cache_fills_total", result="stored") >= 1
    assert value(scrape(lead), "toystore_replica_commit_seconds_count") == commits + 1
    followers = [replica_name(rid) for rid in store.replica_urls if replica_name(rid) != leader]
    lags = scrape(lead)
    for rid in store.replica_urls:
        if replica_name(rid) in followers:
            assert ("toystore_replica_replication_lag", frozenset({("follower", str(rid))})) in lags
            assert value(lags, "toystore_replica_replication_lag", follower=str(rid)) == 0


def test_every_metric_a_service_exposes_is_documented(store):
    documented = (ROOT / "docs" / "operations.md").read_text()
    for name in APP_SERVICES:
        families = text_string_to_metric_families(
            requests.get(f"{store.url(name)}/metrics", timeout=5).text
        )
        ours = {family.name for family in families if family.name.startswith("toystore_")}
        assert ours, name
        # The parser names a counter without its _total.
        missing = [f for f in ours if f not in documented]
        assert not missing, f"{name} exposes metrics docs/operations.md does not list: {missing}"


def _per_worker_counts(metrics_dir: Path, scratch: Path, labels: dict[str, str]) -> list[float]:
    """Each worker's own count of those requests, read from its file alone."""
    counts = []
    for path in sorted(metrics_dir.glob("counter_*.db")):
        alone = scratch / path.stem
        alone.mkdir()
        shutil.copy(path, alone)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(alone))
        sample = registry.get_sample_value(
            "toystore_http_requests_total", {"service": "frontend", **labels}
        )
        counts.append(sample or 0.0)
    return counts


def test_front_end_counts_add_up_over_its_workers(store, tmp_path):
    reads = 60
    before = requests_served(scrape(store.frontend_url), "frontend", PRODUCT_READS)

    def read(_: int) -> int:
        # A new connection each time, so that the reads spread over the workers.
        return requests.get(f"{store.frontend_url}/products/Tux", timeout=5).status_code

    with ThreadPoolExecutor(8) as pool:
        assert set(pool.map(read, range(reads))) == {200}

    settings = Settings.from_env(store.specs["frontend"].env)
    metrics_dir = settings.metrics_dir("frontend", store.ports.frontend)
    per_worker = _per_worker_counts(metrics_dir, tmp_path, PRODUCT_READS)
    assert len([count for count in per_worker if count > 0]) >= 2, per_worker
    assert sum(per_worker) == before + reads
    # Whichever worker answers the scrape reports the sum over all of them.
    for _ in range(2 * WORKERS):
        assert requests_served(scrape(store.frontend_url), "frontend", PRODUCT_READS) == sum(
            per_worker
        )


def test_a_request_id_is_followed_to_the_catalog_and_the_leader(store):
    leader = replica_name(current_leader(store))
    request_id = f"test-{uuid.uuid4()}"
    reply = place_order(store, request_id)
    assert reply.headers["X-Request-ID"] == request_id

    lines = wait_logged(store, "frontend", request_id, "/orders")
    (access,) = [line for line in lines if line["event"] == "request"]
    assert {"method": "POST", "route": "/orders", "status": 201}.items() <= access.items()
    assert access["duration_ms"] > 0
    for name, path in (("frontend", "/orders"), (leader, "/orders"), ("catalog", "/purchases")):
        lines = wait_logged(store, name, request_id, path)
        assert any(line.get("path") == path for line in lines), (name, lines)
        assert all(line["request_id"] == request_id for line in lines)


@pytest.mark.parametrize("given", ["", "two words", "a" * 129, "semi;colon", "ünïcode"])
def test_a_malformed_request_id_is_replaced(store, given):
    reply = requests.get(
        f"{store.frontend_url}/products/Tux", headers={"X-Request-ID": given}, timeout=5
    )
    made = reply.headers["X-Request-ID"]
    assert made != given and uuid.UUID(hex=made).hex == made


def test_every_line_of_every_service_log_is_json(store):
    """Last in this module: it kills a front-end worker, so that Gunicorn's own error log
    has something to say."""
    requests.get(f"{store.frontend_url}/no/such/route", timeout=5)
    requests.post(f"{store.frontend_url}/orders", data="not json", timeout=5)
    workers = [pid for pid in store.processes("frontend") if pid != store.pid("frontend")]
    assert len(workers) == WORKERS
    os.kill(workers[0], signal.SIGKILL)
    deadline = time.monotonic() + 10
    while not any("SIGKILL" in line for line in log_lines(store, "frontend")):
        assert time.monotonic() < deadline, "Gunicorn did not log the killed worker"
        time.sleep(0.05)
    place_order(store)

    for name in APP_SERVICES:
        lines = log_lines(store, name)
        assert lines, name
        for line in lines:
            entry = json.loads(line)
            assert {"ts", "level", "service", "event"} <= entry.keys(), (name, line)
    killed = [json.loads(line) for line in log_lines(store, "frontend") if "SIGKILL" in line]
    assert killed[0]["service"] == "frontend" and killed[0]["level"] == "error"
