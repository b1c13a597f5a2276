"""The catalog's state in one SQLite file: toys, stock, keyed purchases, restocks, the fence.

Every change is one ``BEGIN IMMEDIATE`` transaction on a single writer connection, serialised
by an in-process lock (SQLite has one writer anyway; the lock saves busy-waiting). Reads use
a small pool of other connections, which WAL lets run beside the writer. With
``synchronous=FULL`` a commit is on disk before the method returns, so before the reply.

Ledger invariant, per toy: initial + restocked - quantity = held + settled, where held is the
quantity of active, unsettled purchases (their orders' fate is still open) and settled that of
purchases whose orders are committed.

Attempts: every purchase and undo names its attempt, ``(term, attempt)`` of the leader that
made it, ordered as a pair. An undo takes back an active, unsettled purchase of its key made at
or below its attempt, and remembers that attempt in ``undone_attempts`` even when no purchase
has landed yet; a purchase at or below a remembered attempt, or below the attempt that holds
the key now, is refused. So a buy that timed out and lands after its undo cannot take stock,
and a late undo cannot take back the stock of a newer attempt (docs/design.md, "The purchase
saga").
"""

from __future__ import annotations

import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from app.catalog.catalog_data import Toy

# (product, version, reason): handed to the listener after each committed change.
ChangeListener = Callable[[str, int, str], None]

_SYNCHRONOUS_MODES = ("FULL", "NORMAL", "OFF")
CATALOG_FILE = "catalog.sqlite3"  # in the catalog's DATA_DIR

_SCHEMA = """
CREATE TABLE IF NOT EXISTS products (
    name TEXT PRIMARY KEY,
    price REAL NOT NULL,
    quantity INTEGER NOT NULL CHECK (quantity >= 0),
    version INTEGER NOT NULL,
    initial INTEGER NOT NULL CHECK (initial >= 0)
);
CREATE TABLE IF NOT EXISTS purchases (
    key TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    quantity INTEGER NOT NULL CHECK (quantity > 0),
    term INTEGER NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('active', 'undone')),
    settled INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL,
    remaining INTEGER NOT NULL,
    version INTEGER NOT NULL,
    attempt INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS purchases_by_name ON purchases (name, status);
CREATE INDEX IF NOT EXISTS purchases_pending ON purchases (term)
    WHERE status = 'active' AND settled = 0;
CREATE TABLE IF NOT EXISTS restocks (
    name TEXT NOT NULL,
    amount INTEGER NOT NULL CHECK (amount > 0),
    at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS restocks_by_name ON restocks (name);
CREATE TABLE IF NOT EXISTS undone_attempts (
    key TEXT PRIMARY KEY,
    term INTEGER NOT NULL,
    attempt INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
INSERT OR IGNORE INTO meta (key, value) VALUES ('fence', 0);
"""


class StoreError(Exception):
    """A purchase the catalog refuses; ``status`` is the HTTP status that says why."""

    status = 400


class UnknownToy(StoreError):
    status = 404


class OutOfStock(StoreError):
    status = 400


class Fenced(StoreError):
    status = 409


class KeyConflict(StoreError):
    status = 422


class AttemptAbandoned(StoreError):
    """The attempt was undone, or a later attempt of the same order holds the key."""

    status = 410


@dataclass(frozen=True)
class Product:
    name: str
    price: float
    quantity: int
    version: int

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class PurchaseResult:
    key: str
    name: str
    quantity: int
    remaining: int
    version: int

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class LedgerRow:
    """One toy's books. ``held``: quantity of active purchases not yet settled (listed in
    ``held_keys``); ``settled``: of purchases whose orders are committed; ``undone``: of
    purchases taken back (each key's latest attempt)."""

    name: str
    initial: int
    restocked: int
    held: int
    settled: int
    undone: int
    quantity: int
    held_keys: tuple[str, ...]

    @property
    def sold(self) -> int:
        return self.held + self.settled

    @property
    def balanced(self) -> bool:
        return self.initial + self.restocked - self.quantity == self.settled + self.held

    def as_dict(self) -> dict[str, object]:
        return {
            **asdict(self),
            "held_keys": list(self.held_keys),
            "sold": self.sold,
            "balanced": self.balanced,
        }


@dataclass(frozen=True)
class ActivePurchase:
    key: str
    name: str
    quantity: int
    term: int
    settled: bool


def read_ledger(conn: sqlite3.Connection) -> list[LedgerRow]:
    """The ledger from any connection to a catalog database (also a read-only one, so a
    checker can read a stopped catalog's file)."""
    rows = conn.execute(
        """
        SELECT p.name, p.initial,
            COALESCE((SELECT SUM(r.amount) FROM restocks r WHERE r.name = p.name), 0),
            COALESCE((SELECT SUM(u.quantity) FROM purchases u
                      WHERE u.name = p.name AND u.status = 'active' AND u.settled = 0), 0),
            COALESCE((SELECT SUM(u.quantity) FROM purchases u
                      WHERE u.name = p.name AND u.status = 'active' AND u.settled = 1), 0),
            COALESCE((SELECT SUM(u.quantity) FROM purchases u
                      WHERE u.name = p.name AND u.status = 'undone'), 0),
            p.quantity,
            (SELECT group_concat(key, ' ') FROM (SELECT u.key FROM purchases u
                WHERE u.name = p.name AND u.status = 'active' AND u.settled = 0
                ORDER BY u.key))
        FROM products p ORDER BY p.rowid
        """
    ).fetchall()
    return [LedgerRow(*row[:-1], tuple(row[-1].split(" ")) if row[-1] else ()) for row in rows]


def read_active_purchases(conn: sqlite3.Connection) -> list[ActivePurchase]:
    """Every purchase whose stock is out (not undone), in the order they were made."""
    rows = conn.execute(
        "SELECT key, name, quantity, term, settled FROM purchases"
        " WHERE status = 'active' ORDER BY created"
    ).fetchall()
    return [
        ActivePurchase(key, name, qty, term, bool(settled))
        for key, name, qty, term, settled in rows
    ]


class CatalogStore:
    """Thread-safe access to the catalog database. Create one per process."""

    def __init__(
        self,
        path: str | Path,
        synchronous: str = "FULL",
        busy_timeout_ms: int = 5000,
        on_change: ChangeListener | None = None,
    ) -> None:
        if synchronous not in _SYNCHRONOUS_MODES:
            raise ValueError(f"synchronous must be one of {_SYNCHRONOUS_MODES}")
        self.path = Path(path)
        self._synchronous = synchronous
        self._busy_timeout_ms = busy_timeout_ms
        self._on_change = on_change
        self._write_lock = threading.Lock()
        self._writer = self._connect()
        self._writer.executescript(_SCHEMA)
        columns = {row[1] for row in self._writer.execute("PRAGMA table_info(purchases)")}
        if "attempt" not in columns:  # a catalog file from before attempts were recorded
            self._writer.execute(
                "ALTER TABLE purchases ADD COLUMN attempt INTEGER NOT NULL DEFAULT 0"
            )
        self._readers: queue.SimpleQueue[sqlite3.Connection] = queue.SimpleQueue()
        self._all_readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()

    def _connect(self) -> sqlite3.Connection:
        # isolation_level=None: we issue BEGIN/COMMIT ourselves, so a transaction's extent is
        # exactly what the code says.
        conn = sqlite3.connect(
            self.path,
            isolation_level=None,
            check_same_thread=False,
            timeout=self._busy_timeout_ms / 1000,
        )
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={self._synchronous}")
        conn.execute(f"PRAGMA busy_timeout={int(self._busy_timeout_ms)}")
        return conn

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._write_lock:
            conn = self._writer
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        # A pool rather than thread-locals: servers that start a thread per request would
        # otherwise leave a connection behind for every thread that ever ran.
        try:
            conn = self._readers.get_nowait()
        except queue.Empty:
            conn = self._connect()
            with self._readers_lock:
                self._all_readers.append(conn)
        try:
            yield conn
        finally:
            self._readers.put(conn)

    def _notify(self, changes: Iterable[tuple[str, int, str]]) -> None:
        if self._on_change is None:
            return
        for product, version, reason in changes:
            self._on_change(product, version, reason)

    def close(self) -> None:
        with self._write_lock:
            self._writer.close()
        with self._readers_lock:
            for conn in self._all_readers:
                conn.close()
            self._all_readers.clear()

    # Loading.

    def load_if_empty(self, toys: Iterable[Toy]) -> bool:
        """Insert the initial catalog unless the database already holds toys."""
        with self._write() as conn:
            if conn.execute("SELECT 1 FROM products LIMIT 1").fetchone():
                return False
            conn.executemany(
                "INSERT INTO products (name, price, quantity, version, initial)"
                " VALUES (?, ?, ?, 1, ?)",
                ((toy.name, toy.price, toy.quantity, toy.quantity) for toy in toys),
            )
            return True

    def load(self, toys: Iterable[Toy]) -> tuple[list[str], list[str]]:
        """Merge a catalog file into a database that may already hold toys: new toys are
        added with their stock, known toys take the file's price; no stock changes. Returns
        the names added and repriced (each gets an invalidation)."""
        added: list[str] = []
        changes: list[tuple[str, int, str]] = []
        with self._write() as conn:
            for toy in toys:
                row = conn.execute(
                    "SELECT price, version FROM products WHERE name = ?", (toy.name,)
                ).fetchone()
                if row is None:
                    conn.execute(
                        "INSERT INTO products (name, price, quantity, version, initial)"
                        " VALUES (?, ?, ?, 1, ?)",
                        (toy.name, toy.price, toy.quantity, toy.quantity),
                    )
                    added.append(toy.name)
                    changes.append((toy.name, 1, "load"))
                elif row[0] != toy.price:
                    conn.execute(
                        "UPDATE products SET price = ?, version = ? WHERE name = ?",
                        (toy.price, row[1] + 1, toy.name),
                    )
                    changes.append((toy.name, row[1] + 1, "load"))
        self._notify(changes)
        repriced = [name for name, _, _ in changes if name not in set(added)]
        return added, repriced

    # Reads.

    def get(self, name: str) -> Product | None:
        with self._read() as conn:
            row = conn.execute(
                "SELECT name, price, quantity, version FROM products WHERE name = ?", (name,)
            ).fetchone()
        return Product(*row) if row else None

    def list_products(self) -> list[Product]:
        with self._read() as conn:
            rows = conn.execute(
                "SELECT name, price, quantity, version FROM products ORDER BY rowid"
            ).fetchall()
        return [Product(*row) for row in rows]

    def count(self) -> int:
        with self._read() as conn:
            return conn.execute("SELECT COUNT(*) FROM products").fetchone()[0]

    def fence(self) -> int:
        with self._read() as conn:
            return conn.execute("SELECT value FROM meta WHERE key = 'fence'").fetchone()[0]

    def ledger(self) -> list[LedgerRow]:
        """Per toy: initial stock, total restocked, total sold by active purchases, and the
        current quantity, read in one statement so it is one consistent snapshot."""
        with self._read() as conn:
            return read_ledger(conn)

    # Changes.

    def purchase(
        self, key: str, name: str, quantity: int, term: int, attempt: int
    ) -> PurchaseResult:
        """Buy ``quantity`` of ``name`` under ``key`` for attempt ``attempt`` of the leader in
        ``term``.

        The same key and attempt again returns the first result and buys nothing; a later
        attempt takes over an active purchase of the key (also returning it); a key whose
        purchase was undone buys again for an attempt above the undone one. Raises Fenced,
        AttemptAbandoned, KeyConflict, UnknownToy or OutOfStock.
        """
        if quantity < 1:
            raise ValueError("quantity must be positive")
        with self._write() as conn:
            fence = conn.execute("SELECT value FROM meta WHERE key = 'fence'").fetchone()[0]
            if term < fence:
                raise Fenced(f"Term {term} is below the catalog's fence ({fence}).")
            undone = conn.execute(
                "SELECT term, attempt FROM undone_attempts WHERE key = ?", (key,)
            ).fetchone()
            if undone is not None and (term, attempt) <= undone:
                raise AttemptAbandoned(f"Attempt {attempt} of term {term} was undone.")
            earlier = conn.execute(
                "SELECT name, quantity, term, attempt, status, remaining, version"
                " FROM purchases WHERE key = ?",
                (key,),
            ).fetchone()
            if earlier is not None:
                e_name, e_quantity, e_term, e_attempt, e_status, e_remaining, e_version = earlier
                if (e_name, e_quantity) != (name, quantity):
                    raise KeyConflict("That key was already used for a different toy or quantity.")
                if e_status == "active":
                    if (term, attempt) < (e_term, e_attempt):
                        raise AttemptAbandoned("A later attempt of this order holds the key.")
                    # A retry (by this leader or a new one) takes the purchase over, so a
                    # reconcile or undo of the earlier attempt leaves it alone.
                    conn.execute(
                        "UPDATE purchases SET term = ?, attempt = ? WHERE key = ?",
                        (term, attempt, key),
                    )
                    return PurchaseResult(key, name, quantity, e_remaining, e_version)
            row = conn.execute(
                "SELECT quantity, version FROM products WHERE name = ?", (name,)
            ).fetchone()
            if row is None:
                raise UnknownToy(f"There is no toy called {name!r}.")
            stock, version = row
            if stock < quantity:
                raise OutOfStock(f"Only {stock} {name} left; cannot sell {quantity}.")
            remaining, version = stock - quantity, version + 1
            conn.execute(
                "UPDATE products SET quantity = ?, version = ? WHERE name = ?",
                (remaining, version, name),
            )
            conn.execute(
                """
                INSERT INTO purchases (key, name, quantity, term, attempt, status, settled,
                    created, remaining, version)
                VALUES (?, ?, ?, ?, ?, 'active', 0, ?, ?, ?)
                ON CONFLICT (key) DO UPDATE SET
                    term = excluded.term, attempt = excluded.attempt, status = 'active',
                    settled = 0, created = excluded.created, remaining = excluded.remaining,
                    version = excluded.version
                """,
                (key, name, quantity, term, attempt, time.time(), remaining, version),
            )
        self._notify([(name, version, "purchase")])
        return PurchaseResult(key, name, quantity, remaining, version)

    def undo(self, key: str, term: int, attempt: int) -> bool:
        """Put back the stock of an active purchase of ``key`` made at or below attempt
        ``(term, attempt)``, and refuse that attempt and every earlier one from now on.

        True when stock went back. A settled purchase belongs to a committed order, so it is
        never undone; a purchase of a later attempt is left alone.
        """
        with self._write() as conn:
            conn.execute(
                """
                INSERT INTO undone_attempts (key, term, attempt) VALUES (?, ?, ?)
                ON CONFLICT (key) DO UPDATE SET term = excluded.term, attempt = excluded.attempt
                WHERE (excluded.term, excluded.attempt) > (term, attempt)
                """,
                (key, term, attempt),
            )
            row = conn.execute(
                "SELECT name, quantity, term, attempt, status, settled FROM purchases"
                " WHERE key = ?",
                (key,),
            ).fetchone()
            if row is None:
                return False
            name, quantity, p_term, p_attempt, status, settled = row
            if status != "active" or settled or (p_term, p_attempt) > (term, attempt):
                return False
            [(version,)] = conn.execute(
                "UPDATE products SET quantity = quantity + ?, version = version + 1"
                " WHERE name = ? RETURNING version",
                (quantity, name),
            ).fetchall()
            conn.execute("UPDATE purchases SET status = 'undone' WHERE key = ?", (key,))
        self._notify([(name, version, "undo")])
        return True

    def reconcile(self, term: int) -> tuple[int, list[dict[str, object]]]:
        """Raise the fence to ``term`` (it never goes down) and list the active, unsettled
        purchases made in a lower term: the ones a new leader must settle or undo."""
        with self._write() as conn:
            conn.execute("UPDATE meta SET value = MAX(value, ?) WHERE key = 'fence'", (term,))
            fence = conn.execute("SELECT value FROM meta WHERE key = 'fence'").fetchone()[0]
            rows = conn.execute(
                "SELECT key, term, attempt FROM purchases"
                " WHERE status = 'active' AND settled = 0 AND term < ? ORDER BY created",
                (term,),
            ).fetchall()
        return fence, [{"key": k, "term": t, "attempt": a} for k, t, a in rows]

    def settle(self, keys: Iterable[str]) -> int:
        """Mark active purchases settled; returns how many of the keys are active purchases."""
        with self._write() as conn:
            cursor = conn.executemany(
                "UPDATE purchases SET settled = 1 WHERE key = ? AND status = 'active'",
                ((key,) for key in keys),
            )
            return cursor.rowcount

    def restock(self, amount: int) -> list[tuple[str, int]]:
        """Every toy at 0 goes back to ``amount``; returns the (name, version) of each."""
        if amount < 1:
            raise ValueError("amount must be positive")
        with self._write() as conn:
            changed = conn.execute(
                "UPDATE products SET quantity = ?, version = version + 1"
                " WHERE quantity = 0 RETURNING name, version",
                (amount,),
            ).fetchall()
            now = time.time()
            conn.executemany(
                "INSERT INTO restocks (name, amount, at) VALUES (?, ?, ?)",
                ((name, amount, now) for name, _ in changed),
            )
        self._notify((name, version, "restock") for name, version in changed)
        return [(name, version) for name, version in changed]
