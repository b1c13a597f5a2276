"""The checker: judges a chaos history against the final state of the replicas, the catalog
and the cache. Each guarantee it checks is explained in docs/reliability.md.

It reads each replica's replicated log (the log and its commit index, not the orders derived
from it) and the catalog's ledger from their SQLite files, read-only, so it runs on a stopped
data dir as well as on a running store; the cache check needs the Redis of the run. Input it
cannot read (a missing, truncated or corrupt file, a malformed history line) is a violation
with a one-line reason, never a traceback.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from app.catalog.store import (
    CATALOG_FILE,
    ActivePurchase,
    LedgerRow,
    read_active_purchases,
    read_ledger,
)
from app.chaos.faults import KILL_FRONTEND_WORKER, NO_CATALOG_KINDS, NO_MAJORITY_KINDS
from app.chaos.history import read_history
from app.common.http import succeeded
from app.common.redis_client import redis_client
from app.orders.log import read_replicated_log, replica_log_path
from app.orders.replication import Entry

# How long after a fault is healed its effects may still show (an election, a reconnect).
GRACE = 3.0
CACHE_CHECKS = 3  # a cached value must differ this many times, a second apart, to count
MAX_LISTED = 20  # violations printed per check
UNREADABLE = "readable input"


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
    left_out: dict[str, str] = field(default_factory=dict)  # fault kind -> why not dealt
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
        for kind, reason in sorted(self.left_out.items()):
            lines.append(f"left out of the deck: {kind} ({reason})")
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


class Unreadable(Exception):
    """A file the checker cannot read; the message is the one-line reason."""


@dataclass(frozen=True)
class ReplicaLog:
    commit_index: int
    entries: list[Entry]

    @property
    def committed(self) -> list[Entry]:
        return [entry for entry in self.entries if entry.index <= self.commit_index]


@dataclass
class FinalState:
    """What the replicas' and the catalog's files hold; ``unreadable`` says what could not be
    read (those parts are left out)."""

    logs: dict[int, ReplicaLog] = field(default_factory=dict)
    ledger: list[LedgerRow] | None = None
    purchases: list[ActivePurchase] | None = None
    unreadable: list[str] = field(default_factory=list)

    @property
    def committed(self) -> dict[int, Entry]:
        """The longest committed prefix any replica holds, by order number."""
        if not self.logs:
            return {}
        longest = max(self.logs.values(), key=lambda log: log.commit_index)
        return {entry.index: entry for entry in longest.committed}


def _open(path: Path) -> sqlite3.Connection:
    """A read-only connection to an SQLite file that passes SQLite's own quick check."""
    if not path.is_file():
        raise Unreadable(f"no database at {path}")
    db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        verdict = db.execute("PRAGMA quick_check").fetchone()[0]
    except sqlite3.Error as exc:
        db.close()
        raise Unreadable(f"cannot read {path}: {exc}") from exc
    if verdict != "ok":
        db.close()
        raise Unreadable(f"{path} is corrupt: {verdict}")
    return db


def read_state(data_dir: Path, replica_ids: Iterable[int]) -> FinalState:
    state = FinalState()
    for rid in replica_ids:
        try:
            db = _open(replica_log_path(data_dir, rid))
            try:
                state.logs[rid] = ReplicaLog(*read_replicated_log(db))
            finally:
                db.close()
        except (Unreadable, sqlite3.Error) as exc:
            state.unreadable.append(f"replica {rid}: {_reason(exc)}")
    try:
        db = _open(data_dir / CATALOG_FILE)
        try:
            state.ledger = read_ledger(db)
            state.purchases = read_active_purchases(db)
        finally:
            db.close()
    except (Unreadable, sqlite3.Error) as exc:
        state.unreadable.append(f"catalog: {_reason(exc)}")
    return state


def _reason(exc: Exception) -> str:
    return str(exc) if isinstance(exc, Unreadable) else f"not a readable database: {exc}"


def stock_problems(state: FinalState) -> list[str]:
    """Per toy, where initial + restocked - current differs from what committed orders hold.

    Empty when the catalog could not be read (that is reported as unreadable).
    """
    if state.ledger is None:
        return []
    sold: Counter = Counter()
    for entry in state.committed.values():
        sold[entry.name] += entry.quantity
    problems = []
    for row in state.ledger:
        taken = row.initial + row.restocked - row.quantity
        if taken != sold[row.name]:
            problems.append(
                f"{row.name}: initial {row.initial} + restocked {row.restocked} - current "
                f"{row.quantity} = {taken}, but committed orders hold {sold[row.name]}"
            )
    known = {row.name for row in state.ledger}
    for name in sorted(set(sold) - known):
        problems.append(f"committed orders hold {sold[name]} of {name}, a toy the catalog lacks")
    return problems


def check(history: Path, data_dir: Path, redis_url: str | None = None) -> Report:
    report = Report()
    records, problems = read_history(history)
    for problem in problems:
        report.violate(UNREADABLE, problem)
    meta = next((r for r in records if r["type"] == "meta"), None)
    if meta is None:
        report.violate(UNREADABLE, f"history {history}: no meta record; nothing to judge")
        return report
    report.left_out = {str(kind): str(reason) for kind, reason in meta["left_out"].items()}
    requests = [r for r in records if r["type"] == "request"]
    windows = _fault_windows(records, report)
    for crash in (r for r in records if r["type"] == "shopper-crash"):
        report.violate("run complete", f"shopper {crash['shopper']} crashed: {crash['error']}")
    state = read_state(data_dir, meta["replicas"])
    for problem in state.unreadable:
        report.violate(UNREADABLE, problem)
    _check_logs(state.logs, report)
    committed = state.committed
    report.committed_orders = len(committed)
    _check_acknowledged(requests, committed, report)
    _check_catalog(state, report)
    _check_replies(requests, windows, float(meta["request_timeout"]), report)
    _check_reads(requests, report)
    _check_replay_marks(requests, report)
    if redis_url and state.ledger is not None:
        _check_cache(redis_url, meta["cache_prefix"], data_dir, report)
    return report


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
            if record.get("rebuilt") is False:
                report.violate(
                    "lost disk rebuilt",
                    f"{', '.join(ident[1])} did not catch up within its rebuild bound after "
                    f"its disk was lost (healed at {record['t']:.2f}s)",
                )
    return windows


def _describe(entry: Entry) -> str:
    return f"{entry.name} x{entry.quantity} (key {entry.key}, term {entry.term})"


def _check_logs(logs: dict[int, ReplicaLog], report: Report) -> None:
    """Each log numbered 0.. with no gap; no number committed with two contents; after the
    run, every replica holds the same log and commit index."""
    contents: dict[int, dict[Entry, list[int]]] = defaultdict(lambda: defaultdict(list))
    for rid, log in sorted(logs.items()):
        indexes = [entry.index for entry in log.entries]
        if indexes != list(range(len(indexes))):
            report.violate("logs well formed", f"replica {rid}: log indexes are not 0..n-1")
        if not -1 <= log.commit_index < len(log.entries):
            report.violate(
                "logs well formed",
                f"replica {rid}: commit index {log.commit_index} but {len(log.entries)} entries",
            )
        for entry in log.committed:
            contents[entry.index][entry].append(rid)
    for index, held in sorted(contents.items()):
        if len(held) > 1:
            report.violate(
                "one content per number",
                f"order {index} committed as "
                + " and as ".join(f"{_describe(e)} on replicas {rids}" for e, rids in held.items()),
            )
    if not logs:
        return
    first_id = min(logs)
    first = logs[first_id]
    for rid, log in sorted(logs.items()):
        if log != first:
            differ = next(
                (
                    i
                    for i, (a, b) in enumerate(zip(log.entries, first.entries, strict=False))
                    if a != b
                ),
                min(len(log.entries), len(first.entries)),
            )
            report.violate(
                "identical logs",
                f"replica {rid} (commit index {log.commit_index}, {len(log.entries)} entries) "
                f"differs from replica {first_id} (commit index {first.commit_index}, "
                f"{len(first.entries)} entries) from index {differ}",
            )


def _check_acknowledged(
    requests: list[dict[str, Any]], committed: dict[int, Entry], report: Report
) -> None:
    """Every order a client got a number for is committed under that number with its toy,
    quantity and key, and a key always got the same number."""
    numbers: dict[str, int] = {}
    for record in requests:
        if not succeeded(record["status"]):
            continue
        if record["op"] == "order":
            key, number = record["key"], record["number"]
            if numbers.setdefault(key, number) != number:
                report.violate(
                    "one order per key", f"key {key} answered {numbers[key]} and {number}"
                )
            entry = committed.get(number)
            if entry is None or (entry.name, entry.quantity, entry.key) != (
                record["toy"], record["quantity"], key,
            ):  # fmt: skip
                report.violate(
                    "acknowledged orders kept",
                    f"order {number} ({record['toy']} x{record['quantity']}, key {key}) is "
                    + (_describe(entry) if entry else "not committed")
                    + " in the log",
                )
        elif record["op"] == "lookup":
            number, name, quantity = record["reply"]
            entry = committed.get(number)
            if entry is None or (entry.name, entry.quantity) != (name, quantity):
                report.violate(
                    "lookups match",
                    f"GET /orders/{number} said {name} x{quantity}, log "
                    + (_describe(entry) if entry else "has no such order"),
                )
    report.acked_orders = len(numbers)


def _check_catalog(state: FinalState, report: Report) -> None:
    """One active purchase per committed order and none without one; stock adds up."""
    if state.purchases is None:
        return
    by_key = {p.key: p for p in state.purchases}
    for number, entry in state.committed.items():
        purchase = by_key.pop(entry.key, None)
        if purchase is None or (purchase.name, purchase.quantity) != (entry.name, entry.quantity):
            report.violate(
                "one purchase per order", f"order {number} ({_describe(entry)}) has {purchase}"
            )
    for purchase in by_key.values():
        report.violate("one purchase per order", f"purchase without an order: {purchase}")
    for problem in stock_problems(state):
        report.violate("stock conservation", problem)


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
        elif succeeded(status) or (op == "order" and status == 400):
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
        if not succeeded(record["status"]) or "version" not in record:
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


def _check_replay_marks(requests: list[dict[str, Any]], report: Report) -> None:
    """An order's first request under a fresh key created it: 201, never marked a replay
    (whatever failovers the front-end went through for it); a reply marked a replay is 200."""
    for record in requests:
        if record["op"] != "order" or not succeeded(record["status"]):
            continue
        where = f"order {record['key']} at {record['start']:.2f}s"
        first = record.get("attempt", 1) == 1 and not record.get("replay", False)
        if first and (record["status"] != 201 or record["replayed"]):
            report.violate(
                "replay marks",
                f"{where}: a fresh key's first request got {record['status']}"
                + (" marked a replay" if record["replayed"] else ""),
            )
        elif record["replayed"] and record["status"] != 200:
            report.violate("replay marks", f"{where}: marked a replay with {record['status']}")


def _check_cache(redis_url: str, prefix: str, data_dir: Path, report: Report) -> None:
    """No cached product differs from the catalog (checked a few times, a second apart, so a
    restock whose invalidation is on its way does not count)."""
    client = redis_client(redis_url, timeout=5)
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
    except redis.RedisError as exc:
        report.violate(UNREADABLE, f"cache at {redis_url}: {exc}")
    except (Unreadable, sqlite3.Error) as exc:
        report.violate(UNREADABLE, f"catalog: {_reason(exc)}")
    finally:
        client.close()


def _stale_entries(client: redis.Redis, prefix: str, data_dir: Path) -> dict[str, str]:
    db = _open(data_dir / CATALOG_FILE)
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
        try:
            value = json.loads(raw)
        except ValueError:
            value = None
        if not isinstance(value, dict) or not isinstance(value.get("name"), str):
            stale[key.decode(errors="replace")] = f"cached value is not a product: {raw[:60]!r}"
            continue
        name, held = value["name"], (value.get("quantity"), value.get("version"))
        if truth.get(name) != held:
            stale[name] = f"cache has quantity/version {held}, catalog {truth.get(name)}"
    return stale
