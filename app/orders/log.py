"""A replica's disk: its term and vote, the replicated log, and the committed orders.

One SQLite file per replica. ``write`` applies one ``replication.Write`` in one transaction,
so a crash (SIGKILL) leaves either the old or the new state, never a mix. Committed entries are
copied into ``orders``, the table an operator compares across replicas.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from app.orders.replication import NO_INDEX, Entry, Meta, Write

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
    commit_index INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS log (
    idx INTEGER PRIMARY KEY,
    term INTEGER NOT NULL,
    name TEXT NOT NULL,
    quantity INTEGER NOT NULL,
    key TEXT NOT NULL UNIQUE
);
CREATE TABLE IF NOT EXISTS orders (
    number INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    quantity INTEGER NOT NULL,
    key TEXT NOT NULL UNIQUE,
    term INTEGER NOT NULL
);
"""


class SqliteLog:
    """The replication.Storage of a replica. Calls are serialised by the replica's lock."""

    def __init__(self, path: Path, synchronous: str = "FULL") -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute(f"PRAGMA synchronous={synchronous}")
        self.db.executescript(_SCHEMA)
        self.db.execute(
            "INSERT OR IGNORE INTO meta VALUES (1, 0, NULL, 0, ?)",
            (NO_INDEX,),
        )

    def load(self) -> tuple[Meta, list[Entry]]:
        term, voted_for, log_term, commit_index = self.db.execute(
            "SELECT current_term, voted_for, log_term, commit_index FROM meta"
        ).fetchone()
        rows = self.db.execute("SELECT idx, term, name, quantity, key FROM log ORDER BY idx")
        entries = [Entry(*row) for row in rows]
        return Meta(term, voted_for, log_term, commit_index), entries

    def write(self, write: Write) -> None:
        meta = write.meta
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute(
                "UPDATE meta SET current_term=?, voted_for=?, log_term=?, commit_index=?",
                (meta.current_term, meta.voted_for, meta.log_term, meta.commit_index),
            )
            if write.truncate_after is not None:
                db.execute("DELETE FROM log WHERE idx > ?", (write.truncate_after,))
            if write.entries:
                db.executemany(
                    "INSERT INTO log (idx, term, name, quantity, key) VALUES (?, ?, ?, ?, ?)",
                    [(e.index, e.term, e.name, e.quantity, e.key) for e in write.entries],
                )
            if write.applied_from is not None:
                db.execute(
                    "INSERT OR IGNORE INTO orders (number, name, quantity, key, term)"
                    " SELECT idx, name, quantity, key, term FROM log WHERE idx BETWEEN ? AND ?",
                    (write.applied_from, meta.commit_index),
                )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def close(self) -> None:
        self.db.close()


def read_orders(path: Path) -> list[tuple[int, str, int, str]]:
    """Every committed order in a replica's file, for operators and consistency checks."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return db.execute(
            "SELECT number, name, quantity, key FROM orders ORDER BY number"
        ).fetchall()
    finally:
        db.close()
