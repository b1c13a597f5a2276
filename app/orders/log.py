"""A replica's disk: its identity, term and vote, the replicated log, the committed orders,
and the purchase saga's outbox of undos not yet answered by the catalog.

One SQLite file per replica. ``write`` applies one ``replication.Write`` in one transaction,
so a crash (SIGKILL) leaves either the old or the new state, never a mix; a write the disk
refuses (full, read-only, I/O error, failed fsync) raises ``StorageError`` having changed
nothing. Committed entries are copied into ``orders``, the table an operator compares across
replicas.

A file created here is a blank directory: its meta row is written (and fsynced) with a fresh
incarnation and ``voter = 0`` before the replica serves, so a replica that lost its disk comes
back as a learner (membership.py).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from app.orders.replication import NO_INDEX, Entry, Meta, SafetyViolation, StorageError, Write
from app.orders.saga import Attempt

LOG_FILE = "orders.sqlite3"  # inside the replica's own DATA_DIR


def replica_dir(data_dir: Path, replica_id: int) -> Path:
    """The directory `toystore up` gives replica ``replica_id`` under its DATA_DIR; a replica
    started alone (`toystore serve replica`) uses its DATA_DIR as given."""
    return data_dir / f"replica-{replica_id}"


def replica_log_path(data_dir: Path, replica_id: int) -> Path:
    """Replica ``replica_id``'s log file in the layout of `toystore up`."""
    return replica_dir(data_dir, replica_id) / LOG_FILE


_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    current_term INTEGER NOT NULL,
    voted_for INTEGER,
    log_term INTEGER NOT NULL,
    commit_index INTEGER NOT NULL,
    cluster_id TEXT NOT NULL,
    incarnation TEXT NOT NULL,
    voter INTEGER NOT NULL,
    vote_floor INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS log (
    idx INTEGER PRIMARY KEY,
    term INTEGER NOT NULL,
    name TEXT NOT NULL,
    quantity INTEGER NOT NULL,
    key TEXT NOT NULL UNIQUE,
    created INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS orders (
    number INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    quantity INTEGER NOT NULL,
    key TEXT NOT NULL UNIQUE,
    term INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS undo_outbox (
    key TEXT NOT NULL,
    term INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (key, term, seq)
);
"""


_META_COLUMNS = (
    "current_term, voted_for, log_term, commit_index, cluster_id, incarnation, voter, vote_floor"
)
# The fields of replication.Entry, in its order.
_ENTRY_COLUMNS = "idx, term, name, quantity, key, created"
# Columns added since a log file could first be made: (name, definition).
_ADDED_LOG_COLUMNS = (("created", "INTEGER NOT NULL DEFAULT 0"),)


HEADROOM = 1 << 20  # bytes a failed disk must take again before the replica uses it


def _probe_headroom(path: Path) -> None:
    """Write HEADROOM bytes to ``path`` and fsync them; raises OSError if the disk cannot."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            block = memoryview(b"\0" * HEADROOM)
            while block:  # a nearly full disk takes part of a write before it says ENOSPC
                block = block[os.write(fd, block) :]
            os.fsync(fd)
        finally:
            os.close(fd)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)


def _disk_error(exc: BaseException) -> bool:
    """An error of the disk, not of our SQL: what makes a replica step aside."""
    if isinstance(exc, OSError):
        return True
    return isinstance(exc, sqlite3.DatabaseError) and not isinstance(
        exc, sqlite3.IntegrityError | sqlite3.ProgrammingError | sqlite3.InterfaceError
    )


class SqliteLog:
    """The replication.Storage of a replica. Calls are serialised by the replica's lock."""

    def __init__(self, path: Path, synchronous: str = "FULL") -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.synchronous = synchronous
        self.created = False  # this call found the directory blank and made a new identity
        self.db = self._open()
        self.db.executescript(_SCHEMA)
        self._add_columns()
        cursor = self.db.execute(
            f"INSERT OR IGNORE INTO meta (id, {_META_COLUMNS})"
            " VALUES (1, 0, NULL, 0, ?, '', ?, 0, 0)",
            (NO_INDEX, secrets.token_hex(8)),
        )
        self.created = cursor.rowcount == 1

    def _add_columns(self) -> None:
        """Bring a log file made by an older version up to the current table."""
        present = {row[1] for row in self.db.execute("PRAGMA table_info(log)")}
        for name, definition in _ADDED_LOG_COLUMNS:
            if name not in present:
                self.db.execute(f"ALTER TABLE log ADD COLUMN {name} {definition}")

    def _open(self) -> sqlite3.Connection:
        db = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA synchronous={self.synchronous}")
        return db

    @contextlib.contextmanager
    def _disk(self) -> Iterator[None]:
        """Roll back whatever failed; a disk error becomes StorageError."""
        try:
            yield
        except BaseException as exc:
            with contextlib.suppress(sqlite3.Error):
                self.db.execute("ROLLBACK")
            if _disk_error(exc):
                raise StorageError(f"{type(exc).__name__}: {exc}") from exc
            raise

    def load(self) -> tuple[Meta, list[Entry]]:
        with self._disk():
            return self._load()

    def _load(self) -> tuple[Meta, list[Entry]]:
        row = self.db.execute(f"SELECT {_META_COLUMNS} FROM meta").fetchone()
        term, voted_for, log_term, commit_index, cluster_id, incarnation, voter, floor = row
        rows = self.db.execute(f"SELECT {_ENTRY_COLUMNS} FROM log ORDER BY idx")
        entries = [Entry(*row) for row in rows]
        meta = Meta(
            term, voted_for, log_term, commit_index, cluster_id, incarnation, bool(voter), floor
        )
        return meta, entries

    def write(self, write: Write) -> None:
        with self._disk():
            self._write(write)

    def _write(self, write: Write) -> None:
        meta = write.meta
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        [(commit_index,)] = db.execute("SELECT commit_index FROM meta").fetchall()
        if write.truncate_after is not None and write.truncate_after < commit_index:
            # replication.py refuses this already; the disk's own guard is the last line.
            raise SafetyViolation(f"refusing to truncate below commit index {commit_index}")
        db.execute(
            "UPDATE meta SET current_term=?, voted_for=?, log_term=?, commit_index=?,"
            " cluster_id=?, voter=?, vote_floor=?",
            (
                meta.current_term, meta.voted_for, meta.log_term, meta.commit_index,
                meta.cluster_id, int(meta.voter), meta.vote_floor,
            ),
        )  # fmt: skip
        if write.truncate_after is not None:
            db.execute("DELETE FROM log WHERE idx > ?", (write.truncate_after,))
        if write.entries:
            db.executemany(
                f"INSERT INTO log ({_ENTRY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",
                [(e.index, e.term, e.name, e.quantity, e.key, e.created) for e in write.entries],
            )
        if write.applied_from is not None:
            db.execute(
                "INSERT OR IGNORE INTO orders (number, name, quantity, key, term)"
                " SELECT idx, name, quantity, key, term FROM log WHERE idx BETWEEN ? AND ?",
                (write.applied_from, meta.commit_index),
            )
        db.execute("COMMIT")

    def reopen(self) -> None:
        """A new connection and one durable write: raises StorageError while the disk still
        fails. After a failed write or fsync, only what a fresh connection reads is trusted.

        First HEADROOM bytes are written, fsynced and removed beside the database: a disk
        with room for one small SQLite page but no more would otherwise count as recovered
        and fail again at the next order."""
        with contextlib.suppress(sqlite3.Error):
            self.db.close()
        with self._disk():
            _probe_headroom(self.path.parent / ".headroom")
            self.db = self._open()
            self.db.execute("BEGIN IMMEDIATE")
            self.db.execute("UPDATE meta SET current_term = current_term")
            self.db.execute("COMMIT")

    def close(self) -> None:
        self.db.close()

    # The saga's outbox: undos the catalog has not answered yet (saga.Outbox on disk).

    def add_undo(self, attempt: Attempt) -> None:
        with self._disk():
            self.db.execute(
                "INSERT OR IGNORE INTO undo_outbox (key, term, seq) VALUES (?, ?, ?)",
                (attempt.key, attempt.term, attempt.seq),
            )

    def remove_undo(self, attempt: Attempt) -> None:
        with self._disk():
            self.db.execute(
                "DELETE FROM undo_outbox WHERE key = ? AND term = ? AND seq = ?",
                (attempt.key, attempt.term, attempt.seq),
            )

    def pending_undos(self) -> list[Attempt]:
        with self._disk():
            rows = self.db.execute("SELECT term, seq, key FROM undo_outbox ORDER BY term, seq")
            return [Attempt(*row) for row in rows]


def read_orders(path: Path) -> list[tuple[int, str, int, str]]:
    """Every committed order in a replica's file, for operators and consistency checks."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return db.execute(
            "SELECT number, name, quantity, key FROM orders ORDER BY number"
        ).fetchall()
    finally:
        db.close()


def read_replicated_log(db: sqlite3.Connection) -> tuple[int, list[Entry]]:
    """A replica's commit index and its whole log, from any connection to its file (a
    read-only one too, so a checker can read a stopped replica's file).

    The meta column is named, so columns added to the table do not change what this reads.
    Raises sqlite3.Error when the file holds no replica log.
    """
    meta = db.execute("SELECT commit_index FROM meta").fetchone()
    if meta is None:
        raise sqlite3.DatabaseError("the meta table has no row")
    rows = db.execute(f"SELECT {_ENTRY_COLUMNS} FROM log ORDER BY idx")
    return meta[0], [Entry(*row) for row in rows]
