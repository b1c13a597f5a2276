"""``toystore bench``: every measurement in one run, ratios against baselines from that run,
results as JSON and as a markdown table in docs/performance.md."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

from app.bench import scenarios
from app.outputs import DOCS, VAR, add_update_docs

RESULTS_START = "<!-- bench results start -->"
RESULTS_END = "<!-- bench results end -->"


def _log(message: str) -> None:
    """The command's progress on stderr, for the person running it."""
    sys.stderr.write(f"[bench] {message}\n")
    sys.stderr.flush()


def measure(seconds: float, quick: bool) -> dict:
    work = scenarios.scratch_dir()
    results: dict = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "cores": os.cpu_count(),
        "seconds_per_point": seconds,
        "users": scenarios.USERS,
    }
    rounds = 3
    _log(f"queries: ceiling, cached, cache off; {rounds} alternating rounds, best of each")
    queries = scenarios.query_comparison(work, seconds * rounds, rounds)
    results["ceiling"] = queries["ceiling"].summary()
    results["cached_query"] = queries["cached"].summary()
    results["uncached_query"] = queries["uncached"].summary()
    users = [1, 4, 16] if quick else [1, 4, 16, 64]
    _log(f"orders at {users} concurrent users")
    results["orders"] = {
        str(n): r.summary() for n, r in scenarios.orders(work, seconds, users).items()
    }
    _log("invalidation lag")
    lags = sorted(scenarios.invalidation_lag(work, samples=50 if quick else 200))
    results["invalidation_lag_ms"] = {
        "samples": len(lags),
        "p50": round(statistics.median(lags), 2),
        "p99": round(lags[min(len(lags) - 1, int(0.99 * len(lags)))], 2),
        "max": round(lags[-1], 2),
    }
    _log("failover pause: SIGKILL of the leader under 16 ordering users")
    results["failover"] = scenarios.failover_pause(work)
    workers = [1, 2] if quick else [1, 2, 4]
    _log(f"cached-query scaling with {workers} front-end workers")
    results["worker_scaling"] = {
        str(n): r.summary() for n, r in scenarios.worker_scaling(work, seconds, workers).items()
    }
    # All 10,000 entries take about 2 MB: headroom below that forces evictions.
    kib = [256, 4096] if quick else [256, 512, 1024, 2048, 4096]
    _log(f"Zipf hit ratio, 10,000 toys, maxmemory = Redis's own use + {kib} KiB")
    results["zipf_hit_ratio"] = scenarios.zipf_hit_ratio(
        work,
        [k * 1024 for k in kib],
        requests_per_point=results.setdefault("zipf_requests", 5000 if quick else 20000),
    )
    results["targets"] = targets(results)
    return results


def targets(r: dict) -> list[dict]:
    cached, ceiling, uncached = r["cached_query"], r["ceiling"], r["uncached_query"]
    orders16 = r["orders"][str(scenarios.USERS)]
    lag, failover = r["invalidation_lag_ms"], r["failover"]
    # A point where even the exact LRU holds nothing (no room at all) has no ratio to judge.
    worst_lru = min(
        (z["vs_ideal"] for z in r["zipf_hit_ratio"].values() if z["vs_ideal"] is not None),
        default=None,
    )

    def row(name: str, value: float, goal: str, met: bool) -> dict:
        return {"target": name, "measured": value, "goal": goal, "met": met}

    vs_ceiling = cached["throughput_rps"] / ceiling["throughput_rps"]
    vs_uncached = cached["throughput_rps"] / uncached["throughput_rps"]
    return [
        row(
            "cached query / ceiling throughput", round(vs_ceiling, 2), ">= 0.85", vs_ceiling >= 0.85
        ),
        row("cached query p99 (ms)", cached["p99_ms"], "<= 15", cached["p99_ms"] <= 15),
        row("cached / cache-off throughput", round(vs_uncached, 2), ">= 1.5", vs_uncached >= 1.5),
        row(
            "orders per second (16 users)",
            orders16["throughput_rps"],
            ">= 300",
            orders16["throughput_rps"] >= 300,
        ),
        row("order p50 (ms, 16 users)", orders16["p50_ms"], "<= 20", orders16["p50_ms"] <= 20),
        row("invalidation lag p99 (ms)", lag["p99"], "<= 10", lag["p99"] <= 10),
        row(
            "failover pause (ms)",
            failover["max_order_ms"],
            "<= 1500",
            failover["max_order_ms"] <= 1500,
        ),
        row(
            "client errors during failover",
            failover["client_errors"],
            "0",
            failover["client_errors"] == 0,
        ),
    ] + (
        []
        if worst_lru is None
        else [row("Zipf hit ratio / exact LRU (worst)", worst_lru, ">= 0.9", worst_lru >= 0.9)]
    )


def _load_table(title: str, rows: dict[str, dict], key: str) -> list[str]:
    lines = [
        f"**{title}**",
        "",
        f"| {key} | req/s | p50 ms | p99 ms | max ms | non-2xx | errors |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for label, s in rows.items():
        lines.append(
            f"| {label} | {s['throughput_rps']} | {s['p50_ms']} | {s['p99_ms']} | {s['max_ms']} "
            f"| {s['non_2xx']} | {s['errors']} |"
        )
    return lines + [""]


def markdown(r: dict) -> str:
    lines = [
        f"Latest run: {r['date']}, {r['cores']} cores, {r['seconds_per_point']} s per point, "
        f"{r['users']} concurrent users unless stated.",
        "",
        "| target | measured | goal | met |",
        "| --- | --- | --- | --- |",
    ]
    for t in r["targets"]:
        lines.append(
            f"| {t['target']} | {t['measured']} | {t['goal']} | {'yes' if t['met'] else 'no'} |"
        )
    lines.append("")
    lines += _load_table(
        "Product queries",
        {
            "ceiling (Flask + one Redis GET)": r["ceiling"],
            "front-end, cached": r["cached_query"],
            "front-end, CACHE_ENABLED=0": r["uncached_query"],
        },
        "what",
    )
    lines += _load_table("Orders (majority commit)", r["orders"], "users")
    lines += _load_table("Cached queries by front-end workers", r["worker_scaling"], "workers")
    lag = r["invalidation_lag_ms"]
    lines += [
        f"**Invalidation lag** (purchase sent to the catalog → cache entry deleted, "
        f"{lag['samples']} samples): p50 {lag['p50']} ms, p99 {lag['p99']} ms, "
        f"max {lag['max']} ms.",
        "",
        f"**Failover**: leader SIGKILLed under {r['users']} ordering users: longest order "
        f"{r['failover']['max_order_ms']} ms, {r['failover']['orders']} orders, "
        f"{r['failover']['client_errors']} client-visible errors.",
        "",
        f"**Zipf(1.1) hit ratio, 10,000 toys**, {r['zipf_requests']} requests a point, "
        "maxmemory = Redis's own use plus:",
        "",
        "| headroom | entries held | hit ratio | exact LRU, as many entries | ratio | evicted |",
        "| --- | --- | --- | --- | --- | --- |",
        *(
            f"| {size} | {z['entries']} | {z['hit_ratio']} | {z['ideal_lru']} | {z['vs_ideal']} "
            f"| {z['evicted_keys']} |"
            for size, z in r["zipf_hit_ratio"].items()
        ),
        "",
    ]
    return "\n".join(lines)


def write(results: dict, json_path: Path, doc: Path) -> None:
    """The results as JSON, and as the results block of ``doc`` (made if missing)."""
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(results, indent=2) + "\n")
    doc.parent.mkdir(parents=True, exist_ok=True)
    text = doc.read_text() if doc.exists() else f"# Performance\n\n{RESULTS_START}\n{RESULTS_END}\n"
    head, _, rest = text.partition(RESULTS_START)
    _, _, tail = rest.partition(RESULTS_END)
    doc.write_text(f"{head}{RESULTS_START}\n{markdown(results)}\n{RESULTS_END}{tail}")


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "bench",
        help="measure throughput and latency against baselines from the same run",
        description="Starts what it measures on free ports: a minimal Flask+Redis ceiling, "
        "the store with and without its cache, orders at several concurrencies, invalidation "
        "lag, a leader failover, front-end worker scaling and a Zipf cache hit ratio. Writes "
        "var/bench/results.json and var/bench/performance.md (with --update-docs: "
        "docs/bench/results.json and the results block of docs/performance.md).",
    )
    parser.add_argument("--seconds", type=float, default=5.0, help="load time per point")
    parser.add_argument("--quick", action="store_true", help="fewer points (a smoke run)")
    parser.add_argument("--out", type=Path, default=None, help="directory for both files")
    add_update_docs(parser, "docs/performance.md and docs/bench/")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    results = measure(args.seconds, args.quick)
    if args.out is not None:
        json_path, doc = args.out / "results.json", args.out / "performance.md"
    elif args.update_docs:
        json_path, doc = DOCS / "bench" / "results.json", DOCS / "performance.md"
    else:
        json_path, doc = VAR / "bench" / "results.json", VAR / "bench" / "performance.md"
    write(results, json_path, doc)
    _log(f"wrote {json_path} and {doc}")
    for t in results["targets"]:
        _log(f"{'met ' if t['met'] else 'MISS'} {t['target']}: {t['measured']} (goal {t['goal']})")
    return 0
