"""The benchmark's parts: the load generator against a real service, and the report."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from app.bench import run
from app.bench.loadgen import run_load


@pytest.fixture(scope="module")
def catalog(module_cluster_factory):
    return module_cluster_factory(services=["redis", "catalog"])


def test_load_generator_counts_replies_and_stops_after_n(catalog):
    paths = iter(["/products/Tux", "/products/No%20such%20toy"] * 50)
    result = run_load(
        catalog.catalog_url,
        lambda _: ("GET", next(paths), None, catalog.internal_headers),
        4,
        30,
        stop_after=100,
    )
    assert result.ok == 50 and result.statuses == {200: 50, 404: 50}
    assert result.errors == 0
    summary = result.summary()
    assert summary["requests"] == 50 and summary["non_2xx"] == 50
    assert 0 < summary["p50_ms"] <= summary["p99_ms"] <= summary["max_ms"]


def test_load_generator_sends_bodies_and_encoded_paths(catalog):
    body = {"key": "bench-test-1", "name": "Fox", "quantity": 1, "term": 0, "attempt": 0}
    bought = run_load(
        catalog.catalog_url,
        lambda _: ("POST", "/purchases", body, catalog.internal_headers),
        2,
        30,
        stop_after=6,
    )
    assert bought.ok == 6  # one purchase, five idempotent replays
    name = run_load(
        catalog.catalog_url,
        lambda _: ("GET", f"/products/{quote('Etch A Sketch')}", None, catalog.internal_headers),
        1,
        30,
        stop_after=1,
    )
    assert name.ok == 1


def test_load_generator_reports_a_dead_service_as_errors():
    result = run_load("http://127.0.0.1:9", lambda _: ("GET", "/", None, None), 2, 0.3)
    assert result.ok == 0 and result.errors > 0


def _load(rps: float, p50: float, p99: float) -> dict:
    return {
        "concurrency": 16,
        "requests": int(rps * 5),
        "throughput_rps": rps,
        "p50_ms": p50,
        "p99_ms": p99,
        "max_ms": p99 * 2,
        "non_2xx": 0,
        "errors": 0,
    }


def test_targets_are_ratios_against_the_same_runs_baselines():
    results = {
        "ceiling": _load(1000, 5, 12),
        "cached_query": _load(900, 5, 14),
        "uncached_query": _load(500, 10, 30),
        "orders": {"16": _load(320, 18, 60)},
        "invalidation_lag_ms": {"samples": 10, "p50": 2, "p99": 11, "max": 12},
        "failover": {"max_order_ms": 900, "p50_ms": 20, "orders": 100, "client_errors": 0},
        "zipf_hit_ratio": {
            "0 KiB": {"vs_ideal": None},  # no room even for the exact LRU: not judged
            "256 KiB": {"vs_ideal": 0.85},
            "4096 KiB": {"vs_ideal": 0.99},
        },
    }
    met = {t["target"]: (t["measured"], t["met"]) for t in run.targets(results)}
    assert met["Zipf hit ratio / exact LRU (worst)"] == (0.85, False)
    assert met["cached query / ceiling throughput"] == (0.9, True)
    assert met["cached / cache-off throughput"] == (1.8, True)
    assert met["invalidation lag p99 (ms)"] == (11, False)
    assert met["orders per second (16 users)"] == (320, True)


def test_results_replace_only_their_block_of_the_page(tmp_path):
    page = tmp_path / "performance.md"
    page.write_text(f"# Perf\n\nintro\n\n{run.RESULTS_START}\nold\n{run.RESULTS_END}\n\noutro\n")
    results = {
        "date": "today",
        "cores": 2,
        "seconds_per_point": 1,
        "users": 16,
        "targets": [{"target": "t", "measured": 1, "goal": ">= 1", "met": True}],
        "ceiling": _load(1, 1, 1),
        "cached_query": _load(1, 1, 1),
        "uncached_query": _load(1, 1, 1),
        "orders": {"16": _load(1, 1, 1)},
        "worker_scaling": {"1": _load(1, 1, 1)},
        "invalidation_lag_ms": {"samples": 1, "p50": 1, "p99": 1, "max": 1},
        "failover": {"max_order_ms": 1, "orders": 1, "client_errors": 0},
        "zipf_requests": 10,
        "zipf_hit_ratio": {
            "512 KiB": {
                "hit_ratio": 0.5,
                "ideal_lru": 0.6,
                "vs_ideal": 0.833,
                "entries": 40,
                "evicted_keys": 3,
            }
        },
    }
    run.write(results, tmp_path / "bench" / "results.json", tmp_path / "performance.md")
    text = page.read_text()
    assert text.startswith("# Perf\n\nintro") and text.endswith("outro\n")
    assert "old" not in text and "| t | 1 | >= 1 | yes |" in text
    assert (tmp_path / "bench" / "results.json").exists()
