"""The chaos checker finds each kind of violation in a hand-made history and data dir, and
passes a consistent one: a checker that always passes would prove nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.catalog.catalog_data import Toy
from app.catalog.store import CatalogStore
from app.chaos.checker import check
from app.orders.log import SqliteLog, replica_log_path
from app.orders.replication import Entry, Meta, Write

ORDERS = [("k0", "Tux", 2), ("k1", "Fox", 1)]


def _make_state(data_dir: Path, orders=ORDERS, replicas=(1, 2, 3), extra_purchase=False) -> None:
    store = CatalogStore(data_dir / "catalog.sqlite3")
    store.load_if_empty([Toy("Tux", 15.99, 100), Toy("Fox", 12.99, 100)])
    for key, name, quantity in orders:
        store.purchase(key, name, quantity, 1, 0)
    if extra_purchase:
        store.purchase("orphan", "Tux", 1, 1, 0)
    store.close()
    entries = [Entry(i, 1, name, qty, key) for i, (key, name, qty) in enumerate(orders)]
    for rid in replicas:
        log = SqliteLog(replica_log_path(data_dir, rid))
        log.write(Write(Meta(1, None, 1, len(entries) - 1), entries=entries, applied_from=0))
        log.close()


def _request(shopper=0, op="order", start=1.0, end=1.1, status=200, **fields) -> dict:
    return {"type": "request", "shopper": shopper, "op": op, "start": start, "end": end,
            "status": status, **fields}  # fmt: skip


GOOD = [
    {"type": "meta", "replicas": [1, 2, 3], "request_timeout": 13.0},
    _request(op="read", toy="Tux", read_quantity=100, version=1, start=0.5, end=0.6),
    _request(key="k0", toy="Tux", quantity=2, number=0, version=2),
    _request(op="read", toy="Tux", read_quantity=98, version=2, start=1.2, end=1.3),
    _request(key="k1", toy="Fox", quantity=1, number=1, version=2, start=1.4, end=1.5),
    _request(op="lookup", number=1, reply=[1, "Fox", 1], start=1.6, end=1.7),
]


def _write(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def _violations(tmp_path: Path, records: list[dict], **state) -> dict[str, list[str]]:
    _make_state(tmp_path, **state)
    report = check(_write(tmp_path / "history.jsonl", records), tmp_path)
    return {name: found for name, found in report.violations.items() if found}


def test_consistent_run_passes(tmp_path):
    assert _violations(tmp_path, GOOD) == {}


@pytest.mark.parametrize(
    ("records", "state", "check_name"),
    [
        ([_request(key="k9", toy="Tux", quantity=1, number=2)], {}, "acknowledged orders kept"),
        ([_request(key="k0", toy="Tux", quantity=2, number=1)], {}, "acknowledged orders kept"),
        ([], {"replicas": (1, 2)}, "replica order tables"),
        ([], {"extra_purchase": True}, "one purchase per order"),
        (
            [_request(op="read", toy="Tux", version=1, read_quantity=100, start=2, end=2.1)],
            {},
            "read your purchases",
        ),
        ([_request(op="read", toy="Tux", status=503, start=2, end=2.1)], {}, "clean replies"),
        ([_request(op="lookup", status=500, start=2, end=2.1)], {}, "clean replies"),
        ([_request(op="read", status=None, error="timeout", start=2, end=15.1)], {}, "no hang"),
        ([_request(op="read", status=None, error="connection")], {}, "clean replies"),
        ([{"type": "shopper-crash", "shopper": 3, "error": "boom"}], {}, "run complete"),
    ],
)
def test_each_violation_is_found(tmp_path, records, state, check_name):
    assert check_name in _violations(tmp_path, GOOD + records, **state)


def test_a_fault_explains_its_503_and_broken_connections(tmp_path):
    faults = [
        {"type": "fault", "phase": "start", "kind": "kill-catalog", "targets": ["catalog"], "t": 2},
        {"type": "fault", "phase": "end", "kind": "kill-catalog", "targets": ["catalog"], "t": 3},
        {
            "type": "fault",
            "phase": "start",
            "kind": "kill-frontend-worker",
            "targets": ["frontend"],
            "t": 4,
        },  # fmt: skip
        {
            "type": "fault",
            "phase": "end",
            "kind": "kill-frontend-worker",
            "targets": ["frontend"],
            "t": 4.01,
        },  # fmt: skip
        _request(op="read", toy="Tux", status=503, start=2.5, end=2.6),
        _request(op="order", status=None, error="connection", start=3.9, end=4.0),
    ]
    assert _violations(tmp_path, GOOD + faults) == {}
    (tmp_path / "late").mkdir()
    late = [*faults, _request(op="read", toy="Tux", status=503, start=9, end=9.1)]
    assert "clean replies" in _violations(tmp_path / "late", GOOD + late)


def test_a_replica_that_differs_is_found(tmp_path):
    _make_state(tmp_path)
    log = SqliteLog(replica_log_path(tmp_path, 2))
    extra = Entry(2, 1, "Tux", 1, "k2")
    log.write(Write(Meta(1, None, 1, 2), entries=[extra], applied_from=2))
    log.close()
    report = check(_write(tmp_path / "history.jsonl", GOOD), tmp_path)
    assert report.violations["replica order tables"]
