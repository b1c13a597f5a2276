"""The chaos checker finds each kind of violation in a hand-made history and data dir, and
passes a consistent one: a checker that always passes would prove nothing.

The data dirs are real: a catalog written by ``CatalogStore`` and replica logs written by
``SqliteLog``, then broken one way per test.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from app.catalog.catalog_data import Toy
from app.catalog.store import CATALOG_FILE, CatalogStore
from app.chaos.checker import check
from app.cli import main
from app.orders.log import SqliteLog, replica_log_path
from app.orders.replication import Entry, Meta, Write

ORDERS = [("k0", "Tux", 2), ("k1", "Fox", 1)]


def _entries(orders=ORDERS) -> list[Entry]:
    return [Entry(i, 1, name, qty, key) for i, (key, name, qty) in enumerate(orders)]


def _write_log(data_dir: Path, rid: int, entries: list[Entry], commit_index: int) -> None:
    log = SqliteLog(replica_log_path(data_dir, rid))
    log.write(Write(Meta(1, None, 1, commit_index), entries=entries, applied_from=0))
    log.close()


def _make_state(data_dir: Path, replicas=(1, 2, 3), extra_purchase=False) -> None:
    store = CatalogStore(data_dir / CATALOG_FILE)
    store.load_if_empty([Toy("Tux", 15.99, 100), Toy("Fox", 12.99, 100)])
    for key, name, quantity in ORDERS:
        store.purchase(key, name, quantity, 1, 0)
    if extra_purchase:
        store.purchase("orphan", "Tux", 1, 1, 0)
    store.close()
    for rid in replicas:
        _write_log(data_dir, rid, _entries(), len(ORDERS) - 1)


def _request(shopper=0, op="order", start=1.0, end=1.1, status=200, **fields) -> dict:
    return {"type": "request", "shopper": shopper, "op": op, "start": start, "end": end,
            "status": status, **fields}  # fmt: skip


def _fault(phase: str, kind: str, targets: list[str], t: float, **fields) -> dict:
    return {"type": "fault", "phase": phase, "kind": kind, "targets": targets, "t": t, **fields}


META = {
    "type": "meta", "replicas": [1, 2, 3], "request_timeout": 13.0, "cache_prefix": "toystore",
    "kinds": ["kill-leader"], "left_out": {},
}  # fmt: skip
GOOD = [
    META,
    _request(op="read", toy="Tux", read_quantity=100, version=1, start=0.5, end=0.6),
    _request(key="k0", toy="Tux", quantity=2, number=0, version=2, status=201, replayed=False),
    _request(op="read", toy="Tux", read_quantity=98, version=2, start=1.2, end=1.3),
    _request(
        key="k1",
        toy="Fox",
        quantity=1,
        number=1,
        version=2,
        start=1.4,
        end=1.5,
        status=201,
        replayed=False,
    ),
    # A replay of k0, and k1's second request after a 503: the first try may have placed it.
    _request(
        key="k0", toy="Tux", quantity=2, number=0, replay=True, replayed=True, start=1.8, end=1.9
    ),
    _request(
        key="k1", toy="Fox", quantity=1, number=1, attempt=2, replayed=True, start=2.0, end=2.1
    ),
    _request(op="lookup", number=1, reply=[1, "Fox", 1], start=1.6, end=1.7),
]


def _write(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def _found(data_dir: Path, history: Path) -> dict[str, list[str]]:
    report = check(history, data_dir)
    assert report.passed == (not any(report.violations.values()))
    return {name: found for name, found in report.violations.items() if found}


def _violations(tmp_path: Path, records: list[dict], **state) -> dict[str, list[str]]:
    _make_state(tmp_path, **state)
    return _found(tmp_path, _write(tmp_path / "history.jsonl", records))


def test_consistent_run_passes(tmp_path):
    assert _violations(tmp_path, GOOD) == {}


@pytest.mark.parametrize(
    ("records", "state", "check_name"),
    [
        (
            [_request(key="k9", toy="Tux", quantity=1, number=2, replayed=False)],
            {},
            "acknowledged orders kept",
        ),
        (
            [_request(key="k0", toy="Tux", quantity=2, number=1, replayed=True)],
            {},
            "acknowledged orders kept",
        ),
        (
            [_request(key="k0", toy="Tux", quantity=2, number=1, replayed=True)],
            {},
            "one order per key",
        ),
        (
            [_request(key="k2", toy="Tux", quantity=1, number=0, status=200, replayed=True)],
            {},
            "replay marks",
        ),
        (
            [_request(key="k0", toy="Tux", quantity=2, number=0, replayed=False)],
            {},
            "replay marks",
        ),
        (
            [
                _request(
                    key="k0",
                    toy="Tux",
                    quantity=2,
                    number=0,
                    replay=True,
                    status=201,
                    replayed=True,
                )
            ],
            {},
            "replay marks",
        ),
        ([_request(op="lookup", number=0, reply=[0, "Fox", 2])], {}, "lookups match"),
        ([], {"extra_purchase": True}, "one purchase per order"),
        ([], {"extra_purchase": True}, "stock conservation"),
        (
            [_request(op="read", toy="Tux", version=1, read_quantity=100, start=2, end=2.1)],
            {},
            "read your purchases",
        ),
        ([_request(op="read", toy="Tux", status=503, start=2, end=2.1)], {}, "clean replies"),
        ([_request(op="lookup", status=500, number=0, start=2, end=2.1)], {}, "clean replies"),
        ([_request(op="read", toy="Tux", status=None, error="timeout", end=15.1)], {}, "no hang"),
        ([_request(op="read", toy="Tux", status=None, error="connection")], {}, "clean replies"),
        ([{"type": "shopper-crash", "shopper": 3, "error": "boom"}], {}, "run complete"),
        (
            [
                _fault("start", "disk-loss", ["replica-2"], 2.0),
                _fault("end", "disk-loss", ["replica-2"], 3.0, rebuilt=False),
            ],
            {},
            "lost disk rebuilt",
        ),
    ],
)
def test_each_violation_in_the_history_is_found(tmp_path, records, state, check_name):
    assert check_name in _violations(tmp_path, GOOD + records, **state)


def test_a_lost_acknowledged_order_is_found(tmp_path):
    """The log lost order 1 on every replica, though its client was told it was placed."""
    _make_state(tmp_path)
    for rid in (1, 2, 3):
        replica_log_path(tmp_path, rid).unlink()
        _write_log(tmp_path, rid, _entries()[:1], 0)
    found = _found(tmp_path, _write(tmp_path / "history.jsonl", GOOD))
    assert any(
        "order 1 (Fox x1, key k1) is not committed" in m
        for m in found.pop("acknowledged orders kept")
    )
    assert "lookups match" in found


def test_a_number_committed_with_two_contents_is_found(tmp_path):
    _make_state(tmp_path)
    db = sqlite3.connect(replica_log_path(tmp_path, 2))
    db.execute("UPDATE log SET name = 'Whale', key = 'kx' WHERE idx = 1")
    db.commit()
    db.close()
    found = _found(tmp_path, _write(tmp_path / "history.jsonl", GOOD))
    [message] = found["one content per number"]
    assert "order 1 committed as Fox x1" in message and "Whale x1" in message
    assert "identical logs" in found


def test_divergent_logs_are_found_beyond_the_commit_index(tmp_path):
    """Replica 2 holds an entry the others lack: its committed prefix agrees, its log not."""
    _make_state(tmp_path)
    log = SqliteLog(replica_log_path(tmp_path, 2))
    log.write(Write(Meta(1, None, 1, 1), entries=[Entry(2, 1, "Tux", 1, "k2")]))
    log.close()
    found = _found(tmp_path, _write(tmp_path / "history.jsonl", GOOD))
    assert list(found) == ["identical logs"]
    assert "replica 2 (commit index 1, 3 entries)" in found["identical logs"][0]


def test_a_gap_in_a_log_is_found(tmp_path):
    _make_state(tmp_path)
    for rid in (1, 2, 3):
        db = sqlite3.connect(replica_log_path(tmp_path, rid))
        db.execute("INSERT INTO log VALUES (3, 1, 'Tux', 1, 'k3', 0)")
        db.execute("UPDATE meta SET commit_index = 3")
        db.commit()
        db.close()
    found = _found(tmp_path, _write(tmp_path / "history.jsonl", GOOD))
    assert "log indexes are not 0..n-1" in found["logs well formed"][0]


def test_stock_that_does_not_add_up_is_found_with_its_figures(tmp_path):
    _make_state(tmp_path)
    db = sqlite3.connect(tmp_path / CATALOG_FILE)
    db.execute("UPDATE products SET quantity = 95 WHERE name = 'Tux'")
    db.commit()
    db.close()
    found = _found(tmp_path, _write(tmp_path / "history.jsonl", GOOD))
    assert found == {
        "stock conservation": [
            "Tux: initial 100 + restocked 0 - current 95 = 5, but committed orders hold 2"
        ]
    }


def _missing(path: Path) -> None:
    path.unlink()


def _truncated(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _corrupt(path: Path) -> None:
    data = bytearray(path.read_bytes())
    page = 4096  # every page after the first: the tables' b-trees
    data[page:] = b"\xa5" * (len(data) - page)
    path.write_bytes(bytes(data))


def _not_sqlite(path: Path) -> None:
    path.write_text("these are not the orders you are looking for\n")


@pytest.mark.parametrize("damage", [_missing, _truncated, _corrupt, _not_sqlite])
@pytest.mark.parametrize("which", ["replica", "catalog"])
def test_an_unreadable_database_is_a_one_line_reason(tmp_path, damage, which):
    _make_state(tmp_path)
    path = replica_log_path(tmp_path, 2) if which == "replica" else tmp_path / CATALOG_FILE
    damage(path)
    found = _found(tmp_path, _write(tmp_path / "history.jsonl", GOOD))
    [reason] = found["readable input"]
    assert reason.startswith("replica 2: " if which == "replica" else "catalog: ")
    assert "\n" not in reason


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("{not json", "history line 9: not JSON"),
        ('{"type": "request", "op": "read"}', "history line 9: request record without a valid"),
        ('["a", "list"]', "history line 9: not a JSON object"),
        ('{"type": "mystery"}', "history line 9: unknown record type 'mystery'"),
        (json.dumps(_request(op="read", toy="Tux", start="soon")), "without a valid 'start'"),
        (json.dumps(_request(op="lookup", number=1, reply=[1])), "reply is not [number, name"),
        (json.dumps(_request(op="read", toy="Tux", version="2")), "an invalid 'version'"),
        (json.dumps(_fault("start", "kill-leader", [3], 2.0)), "an invalid 'targets'"),
    ],
)
def test_a_malformed_history_line_is_a_one_line_reason(tmp_path, line, reason):
    _make_state(tmp_path)
    history = _write(tmp_path / "history.jsonl", GOOD)
    with history.open("a") as handle:
        handle.write(line + "\n")
    found = _found(tmp_path, history)
    [message] = found["readable input"]
    assert reason in message


def test_a_history_without_meta_or_file_fails_with_a_reason(tmp_path):
    _make_state(tmp_path)
    found = _found(tmp_path, _write(tmp_path / "history.jsonl", GOOD[1:]))
    assert found == {"readable input": [f"history {tmp_path / 'history.jsonl'}: no meta record; "
                                        "nothing to judge"]}  # fmt: skip
    found = _found(tmp_path, tmp_path / "absent.jsonl")
    assert "cannot read it" in found["readable input"][0]


def test_check_only_exits_1_on_unreadable_input(tmp_path, capsys):
    _make_state(tmp_path)
    _not_sqlite(replica_log_path(tmp_path, 3))
    history = _write(tmp_path / "history.jsonl", GOOD)
    argv = ["chaos", "--check-only", "--history", str(history), "--data-dir", str(tmp_path)]
    assert main(argv) == 1
    out = capsys.readouterr().out
    assert out.startswith("verdict: FAIL")
    assert "VIOLATION readable input: 1" in out


def test_kinds_left_out_of_the_deck_are_reported(tmp_path):
    _make_state(tmp_path)
    meta = {**META, "left_out": {"disk-full": "mounting a small disk per replica needs root"}}
    report = check(_write(tmp_path / "history.jsonl", [meta, *GOOD[1:]]), tmp_path)
    assert report.passed
    assert "left out of the deck: disk-full (mounting a small disk" in report.render()


def test_a_fault_explains_its_503_and_broken_connections(tmp_path):
    faults = [
        _fault("start", "kill-catalog", ["catalog"], 2),
        _fault("end", "kill-catalog", ["catalog"], 3),
        _fault("start", "kill-frontend-worker", ["frontend"], 4),
        _fault("end", "kill-frontend-worker", ["frontend"], 4.01),
        _fault("start", "catalog-kill-mid-order", ["catalog"], 20, in_flight=2),
        _fault("end", "catalog-kill-mid-order", ["catalog"], 21),
        _request(op="read", toy="Tux", status=503, start=2.5, end=2.6),
        _request(
            op="order",
            key="k5",
            toy="Tux",
            quantity=1,
            status=None,
            error="connection",
            start=3.9,
            end=4.0,
        ),  # fmt: skip
        _request(op="order", key="k6", toy="Fox", quantity=1, status=503, start=19.9, end=21),
    ]
    assert _violations(tmp_path, GOOD + faults) == {}
    (tmp_path / "late").mkdir()
    late = [*faults, _request(op="read", toy="Tux", status=503, start=9, end=9.1)]
    assert "clean replies" in _violations(tmp_path / "late", GOOD + late)
