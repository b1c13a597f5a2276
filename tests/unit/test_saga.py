"""The purchase saga driven by simulated time and messages, against the real catalog store.

The catalog is ``CatalogStore`` on a temporary SQLite file behind a simulated network that
refuses (catalog down), loses replies, duplicates requests and delivers them late (after later
ones: reordering). The order log is a small model of what ``replication.py`` guarantees: a
committed prefix that never changes, uncommitted entries that a new leader may or may not
keep, ``abandon`` that drops only entries no follower was sent, and deposed leaders that may
go on believing they lead. Replicas crash (sagas and memory lost, the outbox reloaded from
"disk") and a full disk can refuse an outbox write.

After every step: each committed order's purchase is active (no undo ever took a committed
order's stock) and the catalog's books balance. At the end of every schedule, once the
sagas are over, late messages landed, a final leader reconciled and the outboxes drained:
initial - stock == what the committed orders bought, one purchase per committed order, none
without one, and every acknowledged order committed with its number.
"""

from __future__ import annotations

import random
import sqlite3
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from app.catalog.catalog_data import load_toys
from app.catalog.store import CatalogStore, StoreError, read_active_purchases
from app.orders import saga
from app.orders.replication import Entry
from app.orders.saga import Attempt, Order

TOYS = ["Tux", "Fox", "Kite"]


class Catalog:
    """The real catalog store behind a network the test controls."""

    def __init__(self, path: Path, rng: random.Random) -> None:
        self.store = CatalogStore(path, synchronous="OFF")
        self.store.load_if_empty(load_toys())
        self.reader = sqlite3.connect(path)
        self.initial = {p.name: p.quantity for p in self.store.list_products()}
        self.rng = rng
        self.mode = "up"  # "down": refused at once; "stopped": taken in, answered never
        self.loss = self.dup = self.late = 0.0
        self.in_flight: list = []  # requests that will land later, in any order

    def call(self, request):
        """(answered, result). Unanswered: whether the request may still land."""
        if self.mode == "down":
            return False, False
        if self.mode == "stopped" or self.rng.random() < self.late:
            self.in_flight.append(request)
            return False, True
        result = request()
        if self.rng.random() < self.dup:
            self.in_flight.append(request)
        if self.rng.random() < self.loss:
            return False, True
        return True, result

    def land(self, count: int | None = None) -> None:
        """Late requests arrive (their answers go to nobody)."""
        for _ in range(len(self.in_flight) if count is None else count):
            if not self.in_flight:
                return
            self.in_flight.pop(self.rng.randrange(len(self.in_flight)))()

    def heal(self) -> None:
        self.mode, self.loss, self.dup, self.late = "up", 0.0, 0.0, 0.0

    # The catalog API the node's CatalogLink speaks.

    def buy(self, order: Order, attempt: Attempt) -> saga.Event:
        def request() -> saga.Event:
            try:
                result = self.store.purchase(
                    order.key, order.name, order.quantity, attempt.term, attempt.seq
                )
            except StoreError as exc:
                return saga.BuyRefused(exc.status, str(exc))
            return saga.Bought(result.version)

        answered, result = self.call(request)
        return result if answered else saga.BuyFailed(maybe_delivered=result)

    def undo(self, attempt: Attempt) -> bool:
        answered, _ = self.call(lambda: self.store.undo(attempt.key, attempt.term, attempt.seq))
        return answered

    def reconcile(self, term: int) -> list[Attempt] | None:
        answered, result = self.call(lambda: self.store.reconcile(term))
        if not answered:
            return None
        return [Attempt(p["term"], p["attempt"], p["key"]) for p in result[1]]

    def settle(self, keys: list[str]) -> bool:
        return self.call(lambda: self.store.settle(keys))[0]

    def active(self) -> dict[str, tuple[str, int, bool]]:
        purchases = read_active_purchases(self.reader)
        return {p.key: (p.name, p.quantity, p.settled) for p in purchases}

    def stock(self) -> dict[str, int]:
        return {p.name: p.quantity for p in self.store.list_products()}


@dataclass
class Disk:
    """What a replica keeps across a crash."""

    term: int = 0
    log: list[Entry] = field(default_factory=list)
    commit: int = -1
    undos: set[Attempt] = field(default_factory=set)
    full: bool = False  # writes fail (the outbox's, the log's appends)


@dataclass
class Running:
    saga: saga.OrderSaga
    command: saga.Command


class Node:
    """One replica: the saga's shell, as node.py is, over the modelled log."""

    def __init__(self, sim: Sim, i: int, disk: Disk) -> None:
        self.sim, self.id, self.disk = sim, i, disk
        self.leader = False
        self.term_start = -1
        self.sent = -1  # highest index sent to a follower this term
        self.book = saga.SagaBook()
        self.outbox = saga.Outbox(first_delay=0.5, max_delay=4.0)
        for attempt in disk.undos:
            self.outbox.add(attempt, sim.now)
        self.running: list[Running] = []
        self.settled_upto = -1
        self.must_reconcile = False

    @property
    def log(self) -> list[Entry]:
        return self.disk.log

    def entry_for_key(self, key: str) -> Entry | None:
        return next((e for e in self.log if e.key == key), None)

    # The order flow (node.place_order).

    def place(self, order: Order) -> Running | None:
        if not self.leader:
            return None
        existing = self.entry_for_key(order.key)
        try:
            running = self.book.begin(order, self.disk.term, existing)
        except saga.Busy:
            return None
        commands = running.start()
        return self._advance(Running(running, commands[-1]), commands)

    def _advance(self, run: Running, commands: list[saga.Command]) -> Running | None:
        for command in commands[:-1]:
            self.queue_undo(command.attempt)
        step = commands[-1]
        if isinstance(step, saga.Done | saga.Fail):
            self.book.end(run.saga)
            if isinstance(step, saga.Done):
                self.sim.acked[run.saga.order.key] = step.number
                self.sim.replayed[run.saga.order.key] = step.replayed
            self.running = [r for r in self.running if r is not run]
            return None
        run.command = step
        if run not in self.running:
            self.running.append(run)
        return run

    def step(self, run: Running, time_out: bool) -> None:
        """Carry out one command of a running saga."""
        match run.command:
            case saga.Buy(order, attempt):
                event = self.sim.catalog.buy(order, attempt)
            case saga.Append(order, term):
                if not self.leader or self.disk.term != term:
                    event = saga.NotLeading()
                elif self.disk.full:
                    event = saga.AppendFailed()
                else:
                    entry = Entry(len(self.log), term, order.name, order.quantity, order.key)
                    self.log.append(entry)
                    event = saga.Appended(entry.index)
            case saga.AwaitCommit(index, term):
                current = self.entry_for_key(run.saga.order.key)
                if current is None or current.index != index:
                    event = saga.EntryGone()
                elif self.disk.commit >= index:
                    event = saga.Committed()
                elif not self.leader or self.disk.term != term:
                    event = saga.LeadershipLost()
                elif time_out:
                    event = saga.TimedOut()
                else:
                    return  # still waiting
            case saga.Abandon(index):
                event = saga.Abandoned(tuple(self.abandon(index, run.saga.term)))
        self._advance(run, run.saga.on(event))

    def abandon(self, index: int, term: int) -> list[Entry]:
        """Replica.abandon: drop entries from ``index`` if no follower was sent them."""
        if not self.leader or self.disk.term != term:
            return []
        if index <= max(self.disk.commit, self.term_start) or index >= len(self.log):
            return []
        if self.sent >= index:
            return []
        removed = self.log[index:]
        del self.log[index:]
        return removed

    # The outbox (node._queue_undo / _send_undos).

    def queue_undo(self, attempt: Attempt) -> None:
        self.outbox.add(attempt, self.sim.now)
        if not self.disk.full:
            self.disk.undos.add(attempt)

    def send_undos(self) -> None:
        for attempt in self.outbox.due(self.sim.now):
            if self.sim.catalog.undo(attempt):
                self.outbox.acked(attempt)
                self.disk.undos.discard(attempt)
            else:
                self.outbox.failed(attempt, self.sim.now)

    # Leading (node._reconcile and the settler).

    def reconcile(self) -> None:
        pending = self.sim.catalog.reconcile(self.disk.term)
        if pending is None:
            return
        verdict = saga.reconcile(pending, self.entry_for_key, self.disk.commit)
        for attempt in verdict.undo:
            self.queue_undo(attempt)
        if self.sim.catalog.settle(verdict.settle):
            self.must_reconcile = False

    def settle(self) -> None:
        keys = saga.to_settle(self.log, self.settled_upto, self.disk.commit)
        if keys and self.sim.catalog.settle(keys):
            self.settled_upto = self.disk.commit


class Sim:
    def __init__(self, tmp: Path, seed: int = 0) -> None:
        self.rng = random.Random(seed)
        self.catalog = Catalog(tmp / f"catalog-{seed}.sqlite3", self.rng)
        self.now = 0.0
        self.disks = {i: Disk() for i in (1, 2, 3)}
        self.nodes = {i: Node(self, i, self.disks[i]) for i in (1, 2, 3)}
        self.alive = {1, 2, 3}
        self.leader: int | None = None  # the newest leader (others may still think they lead)
        self.replicated = -1  # the followers hold the newest leader's log up to here
        self.term = 0
        self.acked: dict[str, int] = {}
        self.replayed: dict[str, bool] = {}
        self.orders: dict[str, Order] = {}
        self.next_key = 0

    # The log.

    def elect(self, i: int, keep: int | None = None, stale: bool = False) -> Node:
        """Node ``i`` leads a new term. Its log: the committed prefix and ``keep`` (random if
        None) of the newest leader's uncommitted entries. ``stale``: the old leader does not
        hear of it (yet) and goes on leading its own term."""
        old = self.leader
        base = self.disks[old] if old is not None else Disk()
        stale = stale and old in self.alive and old != i
        # Entries only the old leader holds survive only if it took part (voted).
        votes = old in self.alive and not stale
        limit = len(base.log) - 1 if votes else max(self.replicated, base.commit)
        open_ = max(min(len(base.log) - 1, limit) - base.commit, 0)
        keep = self.rng.randint(0, open_) if keep is None else min(keep, open_)
        log = list(base.log[: base.commit + 1 + keep])
        self.term += 1
        self.leader = i
        self.replicated = len(log) - 1
        for j in self.alive | {i}:
            if not (j == old and stale):
                self.follow(j, log)
        node = self.nodes[i]
        node.leader = True
        node.term_start = len(log) - 1  # ready: everything it inherited is committed
        node.settled_upto = len(log) - 1
        node.must_reconcile = True
        node.reconcile()
        self.check()
        return node

    def follow(self, j: int, log: list[Entry]) -> None:
        node = self.nodes[j]
        node.leader = False
        node.sent = -1
        node.disk.term = self.term
        node.disk.log = list(log)
        node.disk.commit = len(log) - 1

    def replicate(self, commit: bool = True) -> None:
        """The newest leader sends its entries to a follower and maybe commits some."""
        node = self.nodes[self.leader]
        if self.leader not in self.alive or not node.leader:
            return
        node.sent = self.replicated = len(node.log) - 1
        if commit:
            node.disk.commit = len(node.log) - 1
        self.check()

    def crash(self, i: int) -> None:
        self.alive.discard(i)

    def restart(self, i: int) -> None:
        self.nodes[i] = Node(self, i, self.disks[i])
        self.alive.add(i)
        if self.leader is not None and self.leader != i:
            self.follow(i, self.disks[self.leader].log)

    # Orders.

    def new_order(self) -> Order:
        key = f"k{self.next_key}"
        self.next_key += 1
        order = Order(self.rng.choice(TOYS), self.rng.randint(1, 3), key)
        self.orders[key] = order
        return order

    def place(self, i: int, order: Order | None = None, steps: int | None = None) -> Running | None:
        """Start an order at replica ``i`` and carry out ``steps`` of its commands (all until
        it waits for the commit, by default); None once the saga is over or refused."""
        order = order or self.new_order()
        self.orders[order.key] = order
        run = self.nodes[i].place(order) if i in self.alive else None
        self.run(run, i, time_out=False, steps=steps)
        return run if run in self.nodes[i].running else None

    def run(
        self, run: Running | None, i: int, time_out: bool = True, steps: int | None = None
    ) -> None:
        """Step one saga until it ends or waits (or ``steps`` commands were carried out)."""
        for _ in range(100 if steps is None else steps):
            if run is None or run not in self.nodes[i].running:
                return
            before = run.command
            self.nodes[i].step(run, time_out)
            self.check()
            if run.command is before and run in self.nodes[i].running:
                return

    # Checks.

    def committed(self) -> list[Entry]:
        disk = self.disks[self.leader] if self.leader is not None else Disk()
        return disk.log[: disk.commit + 1]

    def check(self) -> None:
        """No undo ever takes a committed order's stock; the catalog's books balance."""
        active = self.catalog.active()
        for entry in self.committed():
            assert active.get(entry.key, (None, None))[:2] == (entry.name, entry.quantity), (
                f"committed order {entry} has no purchase"
            )
        for row in self.catalog.store.ledger():
            assert row.balanced, row

    def drain(self) -> None:
        """Every replica sends its outbox until the catalog has answered every undo."""
        for _ in range(100):
            self.now += 5.0
            for i in sorted(self.alive):
                self.nodes[i].send_undos()
            if not any(len(self.nodes[i].outbox) for i in self.alive):
                return
        raise AssertionError("the outboxes did not drain")

    def finish(self) -> None:
        """Heal, end every saga, land every late message, reconcile under a final leader,
        settle and drain."""
        self.catalog.heal()
        for i in (1, 2, 3):
            if i not in self.alive:
                self.restart(i)
        for i in (1, 2, 3):
            for run in list(self.nodes[i].running):
                self.run(run, i)
        self.catalog.land()
        final = self.elect(self.rng.choice([1, 2, 3]))
        final.settle()
        self.drain()
        self.catalog.land()

    def assert_conserved(self) -> None:
        committed = {e.key: e for e in self.committed()}
        active = self.catalog.active()
        for key, entry in committed.items():
            assert active.get(key, (None, None))[:2] == (entry.name, entry.quantity), key
        leaked = sorted(set(active) - set(committed))
        assert not leaked, f"purchases without a committed order: {leaked}"
        bought = Counter()
        for entry in committed.values():
            bought[entry.name] += entry.quantity
        stock = self.catalog.stock()
        for name, initial in self.catalog.initial.items():
            assert initial - stock[name] == bought[name], name
        for key, number in self.acked.items():
            assert key in committed and committed[key].index == number, key

    def assert_nothing_held(self) -> None:
        """Without a new leader: every purchase is settled or back (the outbox did it)."""
        assert all(not len(self.nodes[i].outbox) for i in self.alive)
        committed = {e.key for e in self.committed()}
        assert set(self.catalog.active()) <= committed
        assert all(row.held == 0 for row in self.catalog.store.ledger())


@pytest.fixture
def sim(tmp_path):
    s = Sim(tmp_path)
    s.elect(3)
    return s


# The happy path and the plain failure paths.


def test_an_order_buys_appends_commits_and_settles(sim):
    run = sim.place(3, steps=1)
    assert isinstance(run.command, saga.Append)
    sim.run(run, 3, time_out=False)
    assert isinstance(run.command, saga.AwaitCommit)
    sim.replicate()
    sim.run(run, 3)
    assert sim.acked == {"k0": 0}
    assert sim.replayed == {"k0": False}
    sim.nodes[3].settle()
    assert sim.catalog.active()["k0"][2] is True  # settled
    sim.assert_nothing_held()
    sim.assert_conserved()


def test_refused_purchase_ends_the_saga_with_the_catalogs_answer(sim):
    order = Order("Tux", 101, "big")
    run = sim.nodes[3].book.begin(order, sim.term, None)
    commands = run.start()
    event = sim.catalog.buy(order, commands[-1].attempt)
    assert run.on(event) == [saga.Fail(400, event.message)]


def test_an_order_already_in_the_log_is_awaited_not_bought_again(sim):
    order = sim.new_order()
    first = sim.place(3, order)
    sim.run(first, 3, time_out=False)
    sim.nodes[3].book.end(first.saga)  # its request went away (503 to the client)
    sim.nodes[3].running.clear()
    again = sim.place(3, order)
    assert isinstance(again.command, saga.AwaitCommit)
    sim.replicate()
    sim.run(again, 3)
    assert sim.acked == {order.key: 0}
    assert sim.replayed == {order.key: True}  # the reply says so (Idempotent-Replayed)
    assert sim.catalog.stock()[order.name] == 100 - order.quantity


def test_one_saga_per_key_on_a_leader(sim):
    """Rule: a second saga for a key already running is refused (Busy). Without it, a retry
    whose buy times out would undo the stock of the first attempt, whose order commits."""
    order = sim.new_order()
    first = sim.place(3, order, steps=1)  # bought, about to append
    sim.catalog.loss = 1.0  # a second saga's buy would time out (and undo)
    assert sim.place(3, order) is None
    sim.catalog.loss = 0.0
    sim.run(first, 3, time_out=False)
    sim.replicate()
    sim.run(first, 3)
    sim.drain()
    sim.check()
    sim.nodes[3].settle()
    sim.assert_nothing_held()
    sim.assert_conserved()


# A buy that times out, and lands before or after its undo.


def test_buy_that_lands_after_its_undo_takes_no_stock(sim):
    """Rule: the catalog refuses a purchase at or below an undone attempt."""
    sim.catalog.mode = "stopped"
    run = sim.place(3)  # the buy is taken in and not answered: the saga undoes it
    assert run is None and len(sim.nodes[3].outbox) == 1
    sim.catalog.mode = "up"
    sim.drain()  # the undo lands first: nothing to take back
    sim.catalog.land()  # then the late buy
    sim.assert_nothing_held()
    sim.assert_conserved()


def test_buy_that_lands_before_its_undo_is_given_back(sim):
    sim.catalog.mode = "stopped"
    sim.place(3)
    sim.catalog.mode = "up"
    sim.catalog.land()
    assert sum(row.held for row in sim.catalog.store.ledger()) > 0
    sim.drain()
    sim.assert_nothing_held()
    sim.assert_conserved()


def test_late_undo_leaves_the_retry_alone(sim):
    """Rule: an undo takes back only a purchase at or below its attempt, so a retry that
    took the purchase over (a later attempt) keeps its stock."""
    order = sim.new_order()
    sim.catalog.loss = 1.0  # the buy lands, its answer is lost
    assert sim.place(3, order) is None
    sim.catalog.loss = 0.0
    sim.catalog.mode = "down"
    sim.nodes[3].send_undos()  # the undo cannot reach the catalog
    sim.catalog.mode = "up"
    retry = sim.place(3, order)  # takes the purchase over
    sim.run(retry, 3, time_out=False)
    sim.replicate()
    sim.run(retry, 3)
    sim.drain()  # the first attempt's undo arrives now
    sim.nodes[3].settle()
    assert sim.acked == {order.key: 0}
    sim.assert_nothing_held()
    sim.assert_conserved()


def test_late_buy_of_an_older_attempt_cannot_take_the_purchase_back(sim):
    """Rule: a purchase below the attempt that holds the key is refused. Without it the late
    buy would re-own the purchase to the old attempt, whose undo then takes the committed
    order's stock."""
    order = sim.new_order()
    sim.catalog.mode = "stopped"
    sim.place(3, order)  # attempt 1: in flight; its undo queued
    sim.catalog.mode = "down"
    sim.nodes[3].send_undos()  # the undo cannot reach the catalog
    sim.catalog.mode = "up"
    retry = sim.place(3, order)  # a later attempt buys
    sim.run(retry, 3, time_out=False)
    sim.replicate()
    sim.run(retry, 3)
    sim.catalog.land()  # attempt 1's buy lands late
    sim.drain()  # and its undo after it
    sim.nodes[3].settle()
    sim.assert_nothing_held()
    sim.assert_conserved()


def test_duplicated_buys_and_undos_move_stock_once(sim):
    sim.catalog.dup = 1.0
    sim.catalog.loss = 1.0
    sim.place(3)
    sim.catalog.heal()
    sim.catalog.dup = 1.0
    sim.drain()
    sim.catalog.land()
    sim.catalog.land()
    sim.assert_nothing_held()
    sim.assert_conserved()


# Orders that cannot commit.


def test_abandoned_entries_are_undone_with_a_fresh_attempt(sim):
    """Rule: the leader that drops entries undoes all of them under an attempt above every
    one it issued. The second order here was bought by a later attempt than the one that
    abandons; undone under the abandoning saga's own attempt, its stock would stay out."""
    first = sim.place(3)
    sim.run(first, 3, time_out=False)  # appended at 0
    second = sim.place(3)
    sim.run(second, 3, time_out=False)  # appended at 1, bought by a later attempt
    sim.run(first, 3)  # times out; abandon drops 0 and 1
    assert first not in sim.nodes[3].running and len(sim.nodes[3].outbox) == 2
    sim.run(second, 3)  # its entry is gone: not placed
    sim.drain()
    sim.assert_nothing_held()
    sim.assert_conserved()
    assert sim.acked == {}


def test_entry_a_follower_may_hold_is_left_to_the_next_leader(sim):
    run = sim.place(3)
    sim.run(run, 3, time_out=False)
    sim.replicate(commit=False)  # sent, not committed
    sim.run(run, 3)
    assert run not in sim.nodes[3].running and len(sim.nodes[3].outbox) == 0
    sim.elect(2, keep=1)  # the next leader has it: committed and settled
    sim.drain()
    sim.assert_nothing_held()
    sim.assert_conserved()


def test_bought_then_deposed_before_the_append_gives_the_stock_back(sim):
    run = sim.place(3, steps=1)  # bought
    sim.elect(2)
    sim.run(run, 3)  # NotLeading: undo
    sim.drain()
    sim.assert_nothing_held()
    sim.assert_conserved()


def test_bought_but_the_disk_refused_the_entry_gives_the_stock_back(sim):
    run = sim.place(3, steps=1)  # bought
    assert run.saga.on(saga.AppendFailed()) == [
        saga.Undo(run.saga.attempt),
        saga.Fail(503, saga.NOT_WRITTEN),
    ]


# The outbox.


def test_undo_waits_in_the_outbox_until_the_catalog_is_back_without_a_leader_change(sim):
    run = sim.place(3)
    sim.run(run, 3, time_out=False)
    sim.catalog.mode = "down"
    sim.run(run, 3)  # times out, abandons, the undo cannot be sent
    for _ in range(5):
        sim.now += 1.0
        sim.nodes[3].send_undos()
    assert len(sim.nodes[3].outbox) == 1
    [held] = [row for row in sim.catalog.store.ledger() if row.held]
    assert held.held_keys == (run.saga.order.key,)
    sim.catalog.mode = "up"
    sim.drain()
    assert sim.term == 1
    sim.assert_nothing_held()
    sim.assert_conserved()


def test_the_outbox_survives_a_crash_of_the_replica(sim):
    sim.catalog.mode = "stopped"
    sim.place(3)
    sim.catalog.mode = "down"
    sim.crash(3)
    sim.restart(3)  # still term 1: nobody else leads
    assert len(sim.nodes[3].outbox) == 1
    sim.catalog.mode = "up"
    sim.catalog.land()
    sim.drain()
    sim.assert_nothing_held()
    sim.assert_conserved()


def test_an_undo_the_disk_could_not_keep_is_done_by_the_next_leader(sim):
    sim.disks[3].full = True
    sim.catalog.loss = 1.0
    sim.place(3)
    sim.catalog.loss = 0.0
    sim.crash(3)  # the in-memory retry dies with it
    sim.elect(2)
    sim.drain()
    sim.assert_nothing_held()
    sim.assert_conserved()


def test_outbox_backs_off_and_forgets_answered_undos():
    box = saga.Outbox(first_delay=1.0, max_delay=4.0)
    a = Attempt(1, 1, "k")
    box.add(a, now=10.0)
    box.add(a, now=11.0)  # queued twice: one undo
    assert box.due(10.0) == [a]
    for now, wait in [(10.0, 1.0), (11.0, 2.0), (13.0, 4.0), (17.0, 4.0)]:
        box.failed(a, now)
        assert box.next_due() == now + wait and box.due(now + wait - 0.01) == []
    box.acked(a)
    assert len(box) == 0 and box.next_due() is None


def test_reconcile_settles_committed_undoes_missing_and_leaves_open_entries():
    log = [Entry(0, 1, "Tux", 1, "a"), Entry(1, 2, "Tux", 1, "b")]
    by_key = {e.key: e for e in log}
    pending = [Attempt(1, 1, "a"), Attempt(1, 2, "b"), Attempt(1, 3, "c")]
    verdict = saga.reconcile(pending, by_key.get, commit_index=0)
    assert verdict == saga.Reconciliation(settle=["a"], undo=[Attempt(1, 3, "c")])


# Random schedules.


@pytest.mark.parametrize("seed", range(300))
def test_random_schedules_conserve_stock(tmp_path, seed):
    """Orders, retries, crashes and restarts of any replica, elections (the old leader at
    times not hearing of it), a catalog down, stopped or losing, duplicating and delaying
    messages, a full disk, timeouts at every wait."""
    sim = Sim(tmp_path, seed)
    rng = random.Random(seed * 31 + 7)
    sim.catalog.loss, sim.catalog.dup, sim.catalog.late = 0.2, 0.2, 0.2
    sim.elect(3)
    for _step in range(120):
        sim.now += rng.random()
        action = rng.random()
        live = sorted(sim.alive)
        if action < 0.2 and live:
            node = rng.choice(live)
            order = None
            if sim.orders and rng.random() < 0.4:
                order = sim.orders[rng.choice(sorted(sim.orders))]  # a retry
            sim.place(node, order, steps=0)
        elif action < 0.45:
            runs = [(i, r) for i in live for r in sim.nodes[i].running]
            if runs:
                i, run = rng.choice(runs)
                sim.nodes[i].step(run, time_out=rng.random() < 0.3)
                sim.check()
        elif action < 0.55:
            sim.replicate(commit=rng.random() < 0.7)
        elif action < 0.62:
            sim.catalog.land(rng.randint(1, 3))
        elif action < 0.72 and live:
            node = sim.nodes[rng.choice(live)]
            node.send_undos()
            if node.leader and node.must_reconcile:
                node.reconcile()
            if node.leader:
                node.settle()
        elif action < 0.78:
            sim.catalog.mode = rng.choice(["up", "up", "down", "stopped"])
        elif action < 0.84:
            victim = rng.choice([1, 2, 3])
            if victim in sim.alive:
                sim.crash(victim)
            else:
                sim.restart(victim)
        elif action < 0.86:
            sim.disks[rng.choice([1, 2, 3])].full = rng.random() < 0.5
        elif live:
            sim.elect(rng.choice(live), stale=rng.random() < 0.3)
        sim.check()
    sim.finish()
    sim.assert_conserved()
