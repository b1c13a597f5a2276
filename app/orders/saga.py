"""The purchase saga as pure logic: replies in, commands out (docs/design.md, "The purchase
saga").

An order at the leader is a saga over two systems that cannot share a transaction, the
catalog's stock and the replicated log: buy at the catalog, append to the log, await the
commit, and on every path that cannot end in a committed order, undo the purchase. The node
(``node.py``) executes the commands this module decides (HTTP to the catalog, the replica
lock, the disk) and feeds back what happened; ``tests/unit/test_saga.py`` drives the same
logic against a simulated catalog and log with crashes, timeouts, duplicated and late replies.

Nothing here opens a socket, starts a thread or reads a clock: time comes in as ``now``.

Every purchase and undo names an **attempt** ``(term, seq)``: the term of the leader and a
number that leader never reuses. The catalog orders attempts as pairs; an undo takes back the
key's active purchase at or below its attempt and refuses that attempt and all earlier ones
from then on, and a purchase below the attempt holding the key is refused. The rules here
make sure an undo is only ever sent for a key whose order cannot commit at or below it:

* One saga per key at a time on a leader (``SagaBook.begin`` refuses a second), so no two
  attempts of one key race each other on one leader.
* An undo is sent only for a key that is in no log that can still commit it: the buy never
  reached the log (it failed, was lost, leadership moved or the disk failed before the
  append), or the leader
  itself dropped the entry because no follower could hold it (``replication.Replica.abandon``).
* The leader that drops entries undoes all of them, each under a fresh attempt (above every
  attempt this leader issued so far), since the attempt that bought a dropped entry may belong
  to a saga that already ended.
* Undos go to a durable outbox and are retried with backoff until the catalog answers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from app.orders.replication import Entry

NOT_PLACED = "Too few order replicas answered; the order was not placed."
OUTCOME_OPEN = "The order could not be confirmed on a majority in time; retry with the same key."
CATALOG_DOWN = "The catalog is not reachable; the order was not placed."
SUPERSEDED = "This replica has been superseded as leader; the order was not placed."
LEADERSHIP_CHANGED = "Leadership changed before the order committed."
BUSY = "This order is already being placed; retry shortly."
NOT_WRITTEN = "This replica could not write the order to its disk; the order was not placed."


@dataclass(frozen=True, order=True)
class Attempt:
    """One try at buying an order's stock; ordered by ``(term, seq)`` as the catalog does."""

    term: int
    seq: int
    key: str


@dataclass(frozen=True)
class Order:
    name: str
    quantity: int
    key: str


# Commands: what the node does next ------------------------------------------------------


@dataclass(frozen=True)
class Buy:
    """POST the purchase to the catalog; answer with a ``Bought``, ``BuyRefused`` or
    ``BuyFailed``."""

    order: Order
    attempt: Attempt


@dataclass(frozen=True)
class Append:
    """Under the replica lock: if still leading in ``term``, append the order to the log
    (answer ``Appended``, or ``AppendFailed`` if the disk refused), else answer
    ``NotLeading``."""

    order: Order
    term: int


@dataclass(frozen=True)
class AwaitCommit:
    """Wait for ``index`` to commit, up to the commit timeout; answer ``Committed``,
    ``EntryGone``, ``LeadershipLost`` or ``TimedOut``."""

    index: int
    term: int


@dataclass(frozen=True)
class Abandon:
    """Under the replica lock: drop the entries from ``index`` on if no follower can hold
    them (``Replica.abandon``); answer ``Abandoned`` with what was dropped."""

    index: int


@dataclass(frozen=True)
class Undo:
    """Put ``attempt`` in the durable outbox; the outbox sends it until the catalog answers."""

    attempt: Attempt


@dataclass(frozen=True)
class Done:
    """The order committed: reply with its number (and the toy's version, if bought now).
    ``replayed``: the order was in the log before this request came (an earlier request with
    its key placed it)."""

    number: int
    version: int | None
    replayed: bool


@dataclass(frozen=True)
class Fail:
    """Reply with this error; the saga is over (any undo it needs was issued before)."""

    status: int
    message: str


Command = Buy | Append | AwaitCommit | Abandon | Undo | Done | Fail


# Events: what happened -------------------------------------------------------------------


@dataclass(frozen=True)
class Bought:
    version: int | None


@dataclass(frozen=True)
class BuyRefused:
    """The catalog answered no: 400 out of stock, 404 unknown toy, 422 key reused, 409 fenced
    (a newer leader's term), 410 this attempt was undone or superseded."""

    status: int
    message: str


@dataclass(frozen=True)
class BuyFailed:
    """No answer (or a server error). ``maybe_delivered``: the purchase may have landed."""

    maybe_delivered: bool


@dataclass(frozen=True)
class Appended:
    index: int


@dataclass(frozen=True)
class NotLeading:
    pass


@dataclass(frozen=True)
class AppendFailed:
    """The disk refused the entry; the log is as it was."""


@dataclass(frozen=True)
class Committed:
    pass


@dataclass(frozen=True)
class EntryGone:
    """Still leading, but the entry left the log: another saga's ``Abandon`` dropped it (and
    undid it)."""


@dataclass(frozen=True)
class LeadershipLost:
    pass


@dataclass(frozen=True)
class TimedOut:
    pass


@dataclass(frozen=True)
class Abandoned:
    removed: tuple[Entry, ...]


Event = (
    Bought
    | BuyRefused
    | BuyFailed
    | Appended
    | NotLeading
    | AppendFailed
    | Committed
    | EntryGone
    | LeadershipLost
    | TimedOut
    | Abandoned
)


class Busy(Exception):
    """Another saga for the same key is running on this leader."""


# The saga -------------------------------------------------------------------------------


class OrderSaga:
    """One order at the leader. ``start()`` gives the first commands, ``on(event)`` the next;
    the last command of each answer is the one whose event comes back (``Done`` and ``Fail``
    end the saga)."""

    def __init__(
        self, order: Order, attempt: Attempt, existing: Entry | None, fresh: Callable[[], int]
    ) -> None:
        self.order = order
        self.attempt = attempt
        self.existing = existing
        self._fresh = fresh  # a new seq, above every seq issued so far
        self.version: int | None = None
        self.index: int | None = None
        self.finished = False

    @property
    def term(self) -> int:
        return self.attempt.term

    def start(self) -> list[Command]:
        if self.existing is not None:
            # Already in the log (an earlier try of this key): nothing to buy, only to await.
            self.index = self.existing.index
            return [AwaitCommit(self.index, self.term)]
        return [Buy(self.order, self.attempt)]

    def on(self, event: Event) -> list[Command]:
        if self.finished:
            raise RuntimeError("the saga is over")
        commands = self._decide(event)
        self.finished = isinstance(commands[-1], Done | Fail)
        return commands

    def _decide(self, event: Event) -> list[Command]:
        match event:
            case Bought(version):
                self.version = version
                return [Append(self.order, self.term)]
            case BuyRefused(409, _):
                return [Fail(421, SUPERSEDED)]
            case BuyRefused(410, _):
                return [Fail(503, NOT_PLACED)]
            case BuyRefused(status, message):
                return [Fail(status, message)]
            case BuyFailed(maybe_delivered):
                undo = [Undo(self.attempt)] if maybe_delivered else []
                return [*undo, Fail(503, CATALOG_DOWN)]
            case NotLeading():
                # Bought but not appended: the key is in no log that can commit it (we bought
                # only because our committed log lacked it), so the purchase goes back.
                return [Undo(self.attempt), Fail(421, SUPERSEDED)]
            case AppendFailed():
                return [Undo(self.attempt), Fail(503, NOT_WRITTEN)]
            case Appended(index):
                self.index = index
                return [AwaitCommit(index, self.term)]
            case Committed():
                assert self.index is not None
                return [Done(self.index, self.version, replayed=self.existing is not None)]
            case EntryGone():
                return [Fail(503, NOT_PLACED)]
            case LeadershipLost():
                # The entry may be on a follower and commit under the next leader, whose
                # reconciliation settles or undoes the purchase: the outcome is open (503),
                # unlike a 421, which says nothing was placed.
                return [Fail(503, LEADERSHIP_CHANGED)]
            case TimedOut():
                assert self.index is not None
                return [Abandon(self.index)]
            case Abandoned(()):
                return [Fail(503, OUTCOME_OPEN)]
            case Abandoned(removed):
                undos = [Undo(Attempt(self.term, self._fresh(), e.key)) for e in removed]
                return [*undos, Fail(503, NOT_PLACED)]
        raise ValueError(f"unexpected event {event!r}")


class SagaBook:
    """The sagas running on one replica, and the attempt numbers it hands out.

    ``seq`` only grows within a process; a restarted replica leads only in a new term, so
    ``(term, seq)`` is never reused.
    """

    def __init__(self) -> None:
        self.running: dict[str, OrderSaga] = {}
        self.seq = 0

    def fresh(self) -> int:
        self.seq += 1
        return self.seq

    def begin(self, order: Order, term: int, existing: Entry | None) -> OrderSaga:
        if order.key in self.running:
            raise Busy(order.key)
        saga = OrderSaga(order, Attempt(term, self.fresh(), order.key), existing, self.fresh)
        self.running[order.key] = saga
        return saga

    def end(self, saga: OrderSaga) -> None:
        if self.running.get(saga.order.key) is saga:
            del self.running[saga.order.key]


# Reconciliation and settling ------------------------------------------------------------


@dataclass(frozen=True)
class Reconciliation:
    settle: list[str]  # committed orders: their purchases are final
    undo: list[Attempt]  # in no log: can never commit


def reconcile(
    pending: Iterable[Attempt], entry_for_key: Callable[[str], Entry | None], commit_index: int
) -> Reconciliation:
    """A new leader's verdict on the catalog's unsettled purchases of older terms, once its
    log is committed and the catalog's fence is raised to its term (so the list is final).

    In the log but not committed yet (a retry re-owned it this term): neither; the settler
    takes it once it commits.
    """
    settle, undo = [], []
    for attempt in pending:
        entry = entry_for_key(attempt.key)
        if entry is None:
            undo.append(attempt)
        elif entry.index <= commit_index:
            settle.append(attempt.key)
    return Reconciliation(settle, undo)


def to_settle(log: list[Entry], settled_upto: int, commit_index: int) -> list[str]:
    """Keys of the orders committed since the last settle."""
    return [entry.key for entry in log[settled_upto + 1 : commit_index + 1]]


# The outbox -----------------------------------------------------------------------------


@dataclass
class _Pending:
    due: float
    delay: float


class Outbox:
    """Undos not yet answered by the catalog, with exponential backoff per undo.

    The node mirrors it on disk (``SqliteLog``) and reloads it at start, so a pending undo
    survives a crash of the replica.
    """

    def __init__(self, first_delay: float, max_delay: float) -> None:
        self.first_delay = first_delay
        self.max_delay = max_delay
        self.pending: dict[Attempt, _Pending] = {}

    def __len__(self) -> int:
        return len(self.pending)

    def add(self, attempt: Attempt, now: float) -> None:
        self.pending.setdefault(attempt, _Pending(now, self.first_delay))

    def due(self, now: float) -> list[Attempt]:
        return sorted(a for a, p in self.pending.items() if p.due <= now)

    def next_due(self) -> float | None:
        return min((p.due for p in self.pending.values()), default=None)

    def acked(self, attempt: Attempt) -> None:
        """The catalog answered (stock went back, or there was nothing to take back)."""
        self.pending.pop(attempt, None)

    def failed(self, attempt: Attempt, now: float) -> None:
        p = self.pending.get(attempt)
        if p is not None:
            p.due = now + p.delay
            p.delay = min(p.delay * 2, self.max_delay)
