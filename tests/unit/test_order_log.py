"""A replica's SQLite log (app/orders/log.py) on a real file: its identity at first start,
disk errors surfacing as StorageError with nothing changed, and its own guard against
truncating committed entries."""

from __future__ import annotations

import sqlite3
from dataclasses import replace

import pytest

from app.orders.log import SqliteLog
from app.orders.replication import Entry, Meta, SafetyViolation, StorageError, Write


def test_a_blank_directory_gets_an_incarnation_and_is_not_a_voter(tmp_path):
    log = SqliteLog(tmp_path / "replica" / "orders.sqlite3")
    meta, entries = log.load()
    assert log.created and not meta.voter and len(meta.incarnation) == 16 and entries == []
    log.close()
    again = SqliteLog(tmp_path / "replica" / "orders.sqlite3")
    assert not again.created and again.load()[0].incarnation == meta.incarnation
    other = SqliteLog(tmp_path / "other" / "orders.sqlite3")
    assert other.load()[0].incarnation != meta.incarnation


def _with_entries(path, count: int) -> tuple[SqliteLog, Meta]:
    log = SqliteLog(path)
    meta = replace(log.load()[0], current_term=1, log_term=1, voter=True)
    entries = [Entry(i, 1, "Tux", 1, f"k{i}") for i in range(count)]
    meta = replace(meta, commit_index=count - 1)
    log.write(Write(meta, entries=entries, applied_from=0))
    return log, meta


def test_a_write_the_disk_refuses_raises_storage_error_and_changes_nothing(tmp_path):
    path = tmp_path / "orders.sqlite3"
    log, meta = _with_entries(path, 2)
    before = log.load()
    # What a read-only or failing disk gives SQLite: a write it cannot make.
    log.db.close()
    log.db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
    with pytest.raises(StorageError):
        log.write(Write(replace(meta, current_term=2), entries=[Entry(2, 2, "Fox", 1, "k2")]))
    log.reopen()  # a fresh, writable connection: the disk works again
    assert log.load() == before


def test_the_log_refuses_to_truncate_committed_entries(tmp_path):
    log, meta = _with_entries(tmp_path / "orders.sqlite3", 3)
    before = log.load()
    with pytest.raises(SafetyViolation):
        log.write(Write(meta, truncate_after=0))
    assert log.load() == before


def test_entries_keep_their_creation_time(tmp_path):
    path = tmp_path / "orders.sqlite3"
    log = SqliteLog(path)
    meta = replace(log.load()[0], current_term=1, log_term=1, voter=True)
    log.write(Write(meta, entries=[Entry(0, 1, "Tux", 1, "k", created=1_700_000_000_123)]))
    log.close()
    assert SqliteLog(path).load()[1] == [Entry(0, 1, "Tux", 1, "k", created=1_700_000_000_123)]


def test_a_log_from_before_entries_had_a_time_is_brought_up_to_date(tmp_path):
    path = tmp_path / "orders.sqlite3"
    SqliteLog(path).close()
    db = sqlite3.connect(path)
    db.executescript(
        "DROP TABLE log; CREATE TABLE log (idx INTEGER PRIMARY KEY, term INTEGER NOT NULL,"
        " name TEXT NOT NULL, quantity INTEGER NOT NULL, key TEXT NOT NULL UNIQUE);"
        " INSERT INTO log VALUES (0, 1, 'Tux', 1, 'old');"
    )
    db.close()
    log = SqliteLog(path)
    assert log.load()[1] == [Entry(0, 1, "Tux", 1, "old", created=0)]  # never expires
    meta = replace(log.load()[0], current_term=1, log_term=1, voter=True)
    log.write(Write(meta, entries=[Entry(1, 1, "Fox", 2, "new", created=5)]))
    assert log.load()[1][1].created == 5
