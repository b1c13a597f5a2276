"""The checker: judges a chaos history against the final state of the replicas, the catalog
and the cache. Each guarantee it checks is explained in docs/reliability.md.

It reads the replicas' and the catalog's SQLite files read-only, so it runs on a stopped data
dir as well as on a running store; the cache check needs the Redis of the run.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from app.catalog.store import read_active_purchases, read_ledger
from app.chaos.faults import KILL_FRONTEND_WORKER, NO_CATALOG_KINDS, NO_MAJORITY_KINDS
from app.chaos.history import read_history
from app.observe import order_table_problems
from app.orders.log import LOG_FILE, read_orders, replica_log_path

# How long after a fault is healed its effects may still show (an election, a reconnect).
GRACE = 3.0
CACHE_CHECKS = 3  # a cached value must differ this many times, a second apart, to count
MAX_LISTED = 20  # violations printed per check


@dataclass
class FaultWindow:
    kind: str
    targets: list[str]
    start: float
    end: float | None = None

    def overlaps(self, start: float, end: float, grace: float) -> bool:
        until = (self.end if self.end is not None else float("inf")) + grace
        return start <= until and end >= self.start


@dataclass
class Report:
    requests: Counter = field(default_factory=Counter)  # op -> count
    replies: Counter = field(default_factory=Counter)  # (op, status or error) -> count
    faults: Counter = field(default_factory=Counter)  # kind -> count
    latency: dict[str, float] = field(default_factory=dict)  # fault kind -> max seconds
    acked_orders: int = 0
    committed_orders: int = 0
    violations: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))

    @property
    def passed(self) -> bool:
        return not any(self.violations.values())

    def violate(self, check: str, message: str) -> None:
        self.violations[check].append(message)

    def render(self) -> str:
        lines = [f"verdict: {'PASS' if self.passed else 'FAIL'}"]
        lines.append(
            f"requests: {sum(self.requests.values())} "
            + " ".join(f"{op}={n}" for op, n in sorted(self.requests.items()))
        )
        lines.append(f"orders: {self.acked_orders} acknowledged, {self.committed_orders} committed")
        lines.append(
            f"faults: {sum(self.faults.values())} "
            + " ".join(f"{kind}={n}" for kind, n in sorted(self.faults.items()))
        )
        lines.append(
            "replies: "
            + " ".join(f"{op}:{outcome}={n}" for (op, outcome), n in sorted(self.replies.items()))
        )
        lines.append("max latency of requests overlapping each kind of fault:")
        for kind, seconds in sorted(self.latency.items()):
            lines.append(f"  {kind:<22} {seconds:6.2f} s")
        for check, found in sorted(self.violations.items()):
            if not found:
                continue
            lines.append(f"VIOLATION {check}: {len(found)}")
            lines.extend(f"  {message}" for message in found[:MAX_LISTED])
        return "\n".join(lines)


def check(history: Path, data_dir: Path, redis_url: str | None = None) -> Report:
    records = list(read_history(history))
    meta = next((r for r in records if r["type"] == "meta"), {})
    requests = [r for r in records if r["type"] == "request"]
    report = Report()
    windows = _fault_windows(records, report)
    for crash in (r for r in records if r["type"] == "shopper-crash"):
        report.violate("run complete", f"shopper {crash['shopper']} crashed: {crash['error']}")
    replica_ids = meta.get("replicas") or _replica_ids(data_dir)
    committed = _check_replicas(data_dir, replica_ids, report)
    _check_acknowledged(requests, committed, report)
    _check_catalog(data_dir, committed, report)
    _check_replies(requests, windows, float(meta.get("request_timeout", 13.0)), report)
    _check_reads(requests, report)
    if redis_url:
        _check_cache(redis_url, meta.get("cache_prefix", "toystore"), data_dir, report)
    return report


def _replica_ids(data_dir: Path) -> list[int]:
    return sorted(int(p.parent.name.split("-")[1]) for p in data_dir.glob(f"replica-*/{LOG_FILE}"))


def _fault_windows(records: list[dict[str, Any]], report: Report) -> list[FaultWindow]:
    windows: list[FaultWindow] = []
    open_: dict[tuple[str, tuple[str, ...]], FaultWindow] = {}
    for record in records:
        if record["type"] != "fault":
            continue
        ident = (record["kind"], tuple(record["targets"]))
        if record["phase"] == "start":
            window = FaultWindow(record["kind"], record["targets"], record["t"])
            windows.append(window)
            open_[ident] = window
            report.faults[record["kind"]] += 1
        elif ident in open_:
            open_.pop(ident).end = record["t"]
    return windows


def _check_replicas(
    data_dir: Path, replica_ids: list[int], report: Report
) -> dict[int, tuple[str, int, str]]:
    """Committed orders identical on every replica, numbered 0.. with no gap, one per key."""
    orders = {}
    for rid in replica_ids:
        path = replica_log_path(data_dir, rid)
        if path.exists():
            orders[rid] = read_orders(path)
        else:
            report.violate("replica order tables", f"replica {rid} has no database at {path}")
    if not orders:
        return {}
    for problem in order_table_problems(orders):
        report.violate("replica order tables", problem)
    first = orders[min(orders)]
    report.committed_orders = len(first)
    return {number: (name, quantity, key) for number, name, quantity, key in first}


def _check_acknowledged(
    requests: list[dict[str, Any]], committed: dict[int, tuple[str, int, str]], report: Report
) -> None:
    """Every order a client got a number for is committed with its toy and quantity, and a
    key always got the same number."""
    numbers: dict[str, int] = {}
    for record in requests:
        if record["status"] != 200:
            continue
        if record["op"] == "order":
            key, number = record["key"], record["number"]
            if numbers.setdefault(key, number) != number:
                report.violate(
                    "one order per key", f"key {key} answered {numbers[key]} and {number}"
                )
            if committed.get(number) != (record["toy"], record["quantity"], key):
                report.violate(
                    "acknowledged orders kept",
                    f"order {number} ({record['toy']} x{record['quantity']}, key {key}) "
                    f"is {committed.get(number)} on the replicas",
                )
        elif record["op"] == "lookup":
            number, name, quantity = record["reply"]
            row = committed.get(number)
            if row is None or row[:2] != (name, quantity):
                report.violate(
                    "lookups match", f"GET /orders/{number} said {name} x{quantity}, log {row}"
                )
    report.acked_orders = len(numbers)


def _check_catalog(
    data_dir: Path, committed: dict[int, tuple[str, int, str]], report: Report
) -> None:
    """One active purchase per committed order and none without one; stock adds up."""
    db = sqlite3.connect(f"file:{data_dir / 'catalog.sqlite3'}?mode=ro", uri=True)
    try:
        purchases = read_active_purchases(db)
        ledger = read_ledger(db)
    finally:
        db.close()
    by_key = {p.key: p for p in purchases}
    for number, (name, quantity, key) in committed.items():
        purchase = by_key.pop(key, None)
        if purchase is None or (purchase.name, purchase.quantity) != (name, quantity):
            report.violate(
                "one purchase per order",
                f"order {number} ({name} x{quantity}) has purchase {purchase}",
            )
    for purchase in by_key.values():
        report.violate("one purchase per order", f"purchase without an order: {purchase}")
    sold: Counter = Counter()
    for name, quantity, _ in committed.values():
        sold[name] += quantity
    for row in ledger:
        expected = row.initial + row.restocked - sold[row.name]
        if expected != row.quantity:
            report.violate(
                "stock conservation",
                f"{row.name}: initial {row.initial} + restocked {row.restocked} - sold by "
                f"orders {sold[row.name]} = {expected}, but the stock is {row.quantity}",
            )


def _explained(record: dict[str, Any], windows: list[FaultWindow], kinds: frozenset) -> bool:
    return any(
        w.kind in kinds and w.overlaps(record["start"], record["end"], GRACE) for w in windows
    )


def _check_replies(
    requests: list[dict[str, Any]], windows: list[FaultWindow], timeout: float, report: Report
) -> None:
    """Only successes, stock-outs, and 503s or broken connections a fault explains."""
    for record in requests:
        op, status, error = record["op"], record["status"], record.get("error")
        report.requests[op] += 1
        report.replies[(op, str(status if status is not None else error))] += 1
        took = record["end"] - record["start"]
        for w in windows:
            if w.overlaps(record["start"], record["end"], GRACE):
                report.latency[w.kind] = max(report.latency.get(w.kind, 0.0), took)
        where = f"{op} at {record['start']:.2f}s for {took:.2f}s"
        if error == "timeout" or took > timeout:
            report.violate("no hang", f"{where}: no reply within {timeout:.1f}s")
        elif error == "connection":
            if not _explained(record, windows, frozenset({KILL_FRONTEND_WORKER})):
                report.violate("clean replies", f"{where}: connection broke with no worker killed")
        elif error is not None:
            report.violate("clean replies", f"{where}: {error}")
        elif status == 200 or (op == "order" and status == 400):
            continue
        elif status == 503:
            kinds = NO_CATALOG_KINDS if op == "read" else NO_CATALOG_KINDS | NO_MAJORITY_KINDS
            if op == "lookup":
                kinds = NO_MAJORITY_KINDS
            if not _explained(record, windows, kinds):
                report.violate(
                    "clean replies", f"{where}: 503 with no fault to explain it: "
                    f"{record.get('message')}"
                )  # fmt: skip
        else:
            report.violate("clean replies", f"{where}: status {status}: {record.get('message')}")


def _check_reads(requests: list[dict[str, Any]], report: Report) -> None:
    """No shopper reads a toy's version older than its own last completed purchase of it."""
    seen: dict[tuple[int, str], int] = {}
    for record in requests:  # each shopper's records are in its program order
        if record["status"] != 200 or "version" not in record:
            continue
        ident = (record["shopper"], record.get("toy", ""))
        if record["op"] == "order":
            seen[ident] = max(seen.get(ident, 0), record["version"])
        elif record["op"] == "read" and record["version"] < seen.get(ident, 0):
            report.violate(
                "read your purchases",
                f"shopper {record['shopper']} read {record['toy']} version {record['version']} "
                f"at {record['start']:.2f}s after buying at version {seen[ident]}",
            )


def _check_cache(redis_url: str, prefix: str, data_dir: Path, report: Report) -> None:
    """No cached product differs from the catalog (checked a few times, a second apart, so a
    restock whose invalidation is on its way does not count)."""
    client = redis.Redis.from_url(redis_url, socket_timeout=5)
    try:
        stale: dict[str, str] = {}
        for attempt in range(CACHE_CHECKS):
            stale = _stale_entries(client, prefix, data_dir)
            if not stale:
                return
            if attempt + 1 < CACHE_CHECKS:
                time.sleep(1.0)
        for name, message in stale.items():
            report.violate("cache matches catalog", f"{name}: {message}")
    finally:
        client.close()


def _stale_entries(client: redis.Redis, prefix: str, data_dir: Path) -> dict[str, str]:
    db = sqlite3.connect(f"file:{data_dir / 'catalog.sqlite3'}?mode=ro", uri=True)
    try:
        truth = {
            name: (quantity, version)
            for name, quantity, version in db.execute(
                "SELECT name, quantity, version FROM products"
            )
        }
    finally:
        db.close()
    stale = {}
    for key in client.scan_iter(match=f"{prefix}:product:*"):
        raw = client.get(key)
        if raw is None:
            continue
        value = json.loads(raw)
        name = value.get("name")
        held = (value.get("quantity"), value.get("version"))
        if truth.get(name) != held:
            stale[name] = f"cache has quantity/version {held}, catalog {truth.get(name)}"
    return stale
