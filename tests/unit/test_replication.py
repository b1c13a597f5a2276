"""The replication protocol driven over a simulated network: loss, duplication, reordering,
crashes (a replica is rebuilt from what it persisted) and partitions."""

from __future__ import annotations

import contextlib
import random
from dataclasses import replace

import pytest

from app.orders.membership import Plan, decide
from app.orders.replication import (
    NO_INDEX,
    AppendReply,
    Entry,
    Meta,
    NotVoter,
    Replica,
    Role,
    StorageError,
    TermTooLow,
    Write,
)


class MemoryStorage:
    """A replica's 'disk'. Checks on every write that committed orders never change; ``fail``
    makes every write fail (a full, read-only or broken disk)."""

    def __init__(self, meta: Meta | None = None) -> None:
        self.meta = meta or Meta()
        self.entries: list[Entry] = []
        self.orders: dict[int, Entry] = {}
        self.fail = False

    def load(self):
        return self.meta, list(self.entries)

    def write(self, write: Write) -> None:
        if self.fail:
            raise StorageError("No space left on device")
        if write.truncate_after is not None:
            assert write.truncate_after >= self.meta.commit_index, "truncated a committed entry"
            del self.entries[write.truncate_after + 1 :]
        for entry in write.entries:
            assert entry.index == len(self.entries)
            self.entries.append(entry)
        assert write.meta.commit_index >= self.meta.commit_index, "commit index went back"
        self.meta = write.meta
        if write.applied_from is not None:
            for index in range(write.applied_from, write.meta.commit_index + 1):
                assert index not in self.orders
                self.orders[index] = self.entries[index]


class Sim:
    """``n`` replicas (three by default) and a network that the test (or a seeded random
    source) controls."""

    def __init__(
        self,
        n: int = 3,
        seed: int = 0,
        loss: float = 0.0,
        dup: float = 0.0,
        reorder: bool = False,
        quorum: int | None = None,
        batch: int = 64,
    ) -> None:
        self.ids = list(range(1, n + 1))
        self.quorum = quorum or n // 2 + 1
        self.storage = {i: MemoryStorage() for i in self.ids}
        self.replicas = {i: self._boot(i) for i in self.ids}
        self.alive = set(self.ids)
        self.cut: set[frozenset[int]] = set()  # pairs that cannot talk
        self.rng = random.Random(seed)
        self.loss, self.dup, self.reorder, self.batch = loss, dup, reorder, batch
        self.queue: list[tuple] = []
        self.committed: dict[int, Entry] = {}  # every entry ever seen committed anywhere
        self.acked: dict[str, int] = {}  # client key -> order number the leader confirmed
        self.abandoned: set[str] = set()  # keys of orders answered "not placed"
        self.next_key = 0
        self.wipes = 0
        self.now = 0.0  # simulated time, in seconds; tests move it

    def _boot(self, i: int) -> Replica:
        peers = [p for p in self.ids if p != i]
        return Replica(i, peers, self.quorum, self.storage[i])

    # Faults

    def crash(self, i: int) -> None:
        self.alive.discard(i)
        self.queue = [m for m in self.queue if i not in (m[0], m[1])]

    def restart(self, i: int) -> None:
        self.replicas[i] = self._boot(i)
        self.alive.add(i)

    def wipe(self, i: int) -> None:
        """Replica i loses its disk: it comes back with a blank directory (a learner)."""
        self.crash(i)
        self.wipes += 1
        self.storage[i] = MemoryStorage(Meta(voter=False, incarnation=f"{i}.{self.wipes}"))
        self.restart(i)

    def join(self, i: int) -> Plan:
        """Replica i asks the peers it can reach for their status (membership.py)."""
        r = self.replicas[i]
        answers = {p: self.replicas[p].status() for p in r.peer_ids if self._link(i, p)}
        decision = decide(r.status(), len(r.peer_ids), r.quorum, answers)
        with contextlib.suppress(StorageError):
            if decision.plan == Plan.BOOTSTRAP:
                r.bootstrap(decision.floor)
            elif decision.floor is not None:
                r.learn_floor(decision.floor)
        return decision.plan

    def partition(self, *group: int) -> None:
        for a in group:
            for b in self.ids:
                if b not in group:
                    self.cut.add(frozenset((a, b)))

    def heal(self) -> None:
        self.cut.clear()
        self.loss = self.dup = 0.0

    def _link(self, a: int, b: int) -> bool:
        return a in self.alive and b in self.alive and frozenset((a, b)) not in self.cut

    def _lost(self) -> bool:
        return self.rng.random() < self.loss

    # Operations

    def elect(self, candidate: int, term: int | None = None) -> bool:
        r = self.replicas[candidate]
        term = term or max(max(x.term, x.meta.vote_floor) for x in self.replicas.values()) + 1
        try:
            request = r.start_election(term)
        except (NotVoter, StorageError):
            return False
        replies = {}
        for pid in r.peer_ids:
            if self._link(candidate, pid) and not self._lost():
                try:
                    reply = self.replicas[pid].handle_vote(request)
                except StorageError:
                    continue  # the voter's disk failed: no vote
                if not self._lost():
                    replies[pid] = reply
        try:
            won = r.finish_election(term, replies, self.now)
        except StorageError:
            won = False
        self.check()
        return won

    def submit(self, leader: int) -> Entry:
        key = f"k{self.next_key}"
        self.next_key += 1
        entry = self.replicas[leader].append_local("Tux", 1, key)
        assert entry.index not in self.committed or self.committed[entry.index] == entry, (
            "an order number was handed out again"
        )
        self.check()
        return entry

    def send(self, leader: int) -> None:
        r = self.replicas[leader]
        if r.role != Role.LEADER:
            return
        for pid in r.peer_ids:
            request = r.make_append(pid, self.batch)
            if pid not in self.alive:
                r.on_unreachable(pid, request, delivered=False)  # connection refused
            elif self._link(leader, pid) and not self._lost():
                self.queue.append((pid, leader, request))
                if self.rng.random() < self.dup:
                    self.queue.append((pid, leader, request))
            else:
                r.on_unreachable(pid, request, delivered=True)  # no reply: it may have arrived

    def deliver(self, count: int | None = None) -> None:
        steps = 0
        while self.queue and (count is None or steps < count):
            steps += 1
            pick = self.rng.randrange(len(self.queue)) if self.reorder else 0
            dst, src, request = self.queue.pop(pick)
            if not self._link(src, dst):
                continue
            try:
                reply = self.replicas[dst].handle_append(request)
            except StorageError:  # the follower's disk failed: it answers 503
                self.replicas[src].on_unreachable(dst, request, delivered=True)
                continue
            if self._link(src, dst) and not self._lost():
                with contextlib.suppress(StorageError):
                    self.replicas[src].on_append_reply(dst, request, reply, self.now)
            self.check()

    def abandon(self, leader: int, index: int) -> None:
        removed = self.replicas[leader].abandon(index)
        self.abandoned.update(entry.key for entry in removed)
        self.check()

    def install(self, target: int, source: int) -> None:
        src = self.replicas[source]
        with contextlib.suppress(StorageError):
            self._install(target, src)
        self.check()

    def _install(self, target: int, src: Replica) -> None:
        self.replicas[target].install_committed(
            src.committed_after(self.replicas[target].commit_index, 50),
            src.commit_index,
            src.meta.cluster_id,
        )
        self.check()

    def settle(self, leader: int, rounds: int = 200) -> None:
        for _ in range(rounds):
            self.send(leader)
            self.deliver()
            r = self.replicas[leader]
            linked = [p for p in r.peer_ids if self._link(leader, p)]
            peers_done = all(
                not r.has_pending(p) and r.progress[p].match_index == r.last_index for p in linked
            )
            if peers_done and all(self.replicas[p].commit_index == r.commit_index for p in linked):
                return
        raise AssertionError("cluster did not settle")

    # Invariants

    def check(self) -> None:
        for i in self.alive:
            r = self.replicas[i]
            for index in range(r.commit_index + 1):
                entry = r.log[index]
                seen = self.committed.setdefault(index, entry)
                assert seen == entry, f"replica {i} committed {entry} where {seen} was committed"
                assert entry.key not in self.abandoned, f"abandoned order {entry} committed"
            if r.role == Role.LEADER:
                for index in range(r.commit_index + 1):
                    self.acked.setdefault(r.log[index].key, index)
        leaders = {}
        for i in self.alive:
            r = self.replicas[i]
            if r.role == Role.LEADER:
                assert r.term not in leaders, "two leaders in one term"
                leaders[r.term] = i


def test_orders_commit_on_a_majority_and_reach_every_replica():
    sim = Sim()
    assert sim.elect(3)
    sim.settle(3)
    assert sim.replicas[3].ready
    entries = [sim.submit(3) for _ in range(5)]
    assert sim.replicas[3].commit_index == NO_INDEX  # nothing commits before a follower holds it
    sim.settle(3)
    assert [e.index for e in entries] == [0, 1, 2, 3, 4]
    for i in sim.ids:
        assert sim.storage[i].entries == entries
        assert list(sim.storage[i].orders.values()) == entries


def test_a_replica_votes_once_a_term_and_only_for_higher_terms():
    sim = Sim()
    r1 = sim.replicas[1]
    from app.orders.replication import VoteRequest

    assert r1.handle_vote(VoteRequest(2, 3, NO_INDEX)).granted
    assert not r1.handle_vote(VoteRequest(2, 2, NO_INDEX)).granted
    assert not r1.handle_vote(VoteRequest(1, 2, NO_INDEX)).granted
    with pytest.raises(TermTooLow):
        r1.start_election(2)
    assert sim.storage[1].meta.voted_for == 3  # the vote is on disk before it is sent


def test_leader_needs_a_majority_of_votes():
    sim = Sim()
    sim.crash(1)
    sim.crash(2)
    assert not sim.elect(3)
    sim.restart(2)
    assert sim.elect(3)


@pytest.mark.parametrize(
    ("n", "seed"), [(3, seed) for seed in range(300)] + [(5, seed) for seed in range(100)]
)
def test_loss_duplication_reordering_and_crashes_never_lose_a_committed_order(n, seed):
    """Random schedules over three and five replicas: orders, sends (refused when the peer is
    down), partial deliveries, crashes and restarts of any replica (all of them at times),
    elections of any live replica, abandoned orders and start-up catch-up. Sim.check() asserts
    after every step that no index ever commits two different entries, no abandoned order ever
    commits, and no term has two leaders."""
    sim = Sim(n=n, seed=seed, loss=0.25, dup=0.25, reorder=True, batch=3)
    rng = random.Random(seed * 7 + 1)
    leader = n
    sim.elect(leader)
    for _step in range(300):
        action = rng.random()
        if action < 0.4 and leader in sim.alive and sim.replicas[leader].role == Role.LEADER:
            sim.submit(leader)
        elif action < 0.7:
            sim.send(leader)
        elif action < 0.88:
            sim.deliver(rng.randint(1, 6))
        elif action < 0.91:
            victim = rng.choice(sim.ids)
            if victim in sim.alive:
                sim.crash(victim)
            else:
                sim.restart(victim)
        elif action < 0.93 and leader in sim.alive:
            # An order timed out: the leader drops what no follower can hold.
            r = sim.replicas[leader]
            if r.last_index > r.commit_index:
                sim.abandon(leader, rng.randint(r.commit_index + 1, r.last_index))
        elif action < 0.95 and len(sim.alive) > 1:
            target, source = rng.sample(sorted(sim.alive), 2)
            sim.install(target, source)
        elif sim.alive:
            candidate = rng.choice(sorted(sim.alive))
            if sim.elect(candidate):
                leader = candidate
    # Heal everything and elect anyone: every acknowledged order survives, numbered as acked.
    for i in sim.ids:
        if i not in sim.alive:
            sim.restart(i)
    sim.heal()
    final = rng.choice(sim.ids)
    assert sim.elect(final)
    sim.settle(final)
    logs = {i: sim.storage[i].entries for i in sim.ids}
    assert all(log == logs[final] for log in logs.values())
    committed = {e.key: e.index for e in logs[final][: sim.replicas[final].commit_index + 1]}
    for key, number in sim.acked.items():
        assert committed.get(key) == number, f"acknowledged order {key} lost or renumbered"
    assert sorted(committed.values()) == list(range(len(committed)))


def test_leader_crash_between_append_and_commit():
    sim = Sim()
    sim.elect(3)
    sim.settle(3)
    committed = sim.submit(3)
    sim.settle(3)
    pending = sim.submit(3)
    # The append reaches replica 2 (it persists the entry) but the leader dies before the reply.
    request = sim.replicas[3].make_append(2, 64)
    sim.replicas[2].handle_append(request)
    sim.crash(3)
    assert sim.elect(2)
    sim.settle(2)
    # Replica 2 held the longer log of the same log_term, so the entry it had survives.
    assert sim.replicas[2].log == [committed, pending]
    assert sim.replicas[2].commit_index == 1
    sim.restart(3)
    sim.settle(2)
    assert sim.storage[3].entries == [committed, pending]


def test_entry_only_on_the_crashed_leader_is_dropped_when_it_returns():
    sim = Sim()
    sim.elect(3)
    sim.settle(3)
    kept = sim.submit(3)
    sim.settle(3)
    sim.submit(3)  # never sent
    sim.crash(3)
    assert sim.elect(2)
    newer = sim.submit(2)
    sim.settle(2)
    sim.restart(3)
    sim.settle(2)
    for i in sim.ids:
        assert sim.storage[i].entries == [kept, newer]


def test_partitioned_old_leader_with_a_stale_term_cannot_commit():
    sim = Sim()
    sim.elect(3)
    sim.settle(3)
    sim.submit(3)
    sim.settle(3)
    sim.partition(3)
    stale = [sim.submit(3) for _ in range(3)]
    sim.send(3)
    sim.deliver()
    assert sim.replicas[3].commit_index == 0  # no majority behind the wall
    assert sim.elect(2)
    newer = sim.submit(2)
    sim.settle(2)
    sim.heal()
    # The old leader still believes it leads; its next message meets a higher term.
    sim.send(3)
    sim.deliver()
    old = sim.replicas[3]
    assert old.role == Role.FOLLOWER and old.commit_index == 0
    sim.settle(2)
    for i in sim.ids:
        log = sim.storage[i].entries
        assert newer in log and not any(e in log for e in stale)
        assert sim.storage[i].entries == sim.storage[2].entries


def test_longer_log_of_an_older_leader_loses_to_a_synced_replica():
    """The case Raft settles with a no-op entry: a new leader that appended nothing yet."""
    sim = Sim()
    sim.elect(3)
    sim.settle(3)
    sim.submit(3)
    sim.settle(3)
    orphan = sim.submit(3)  # only on replica 3
    sim.crash(3)
    assert sim.elect(2)  # inherits [0], syncs replica 1, appends nothing of its own
    sim.settle(2)
    assert sim.replicas[1].meta.log_term == sim.replicas[2].term
    sim.crash(2)
    sim.restart(3)
    # Replicas 3 (longer log, older log_term) and 1 (shorter, newer log_term) elect 3:
    assert sim.elect(3)
    assert orphan not in sim.replicas[3].log
    sim.settle(3)
    assert orphan not in sim.storage[1].entries


def test_lagging_replica_catches_up_by_backing_up():
    sim = Sim(batch=16)
    sim.elect(3)
    sim.settle(3)
    sim.crash(1)
    for _ in range(200):
        sim.submit(3)
        sim.send(3)
        sim.deliver()
    assert sim.replicas[3].commit_index == 199
    sim.restart(1)
    sim.settle(3)
    assert sim.storage[1].entries == sim.storage[3].entries
    assert len(sim.storage[1].orders) == 200


def test_restarted_replica_installs_committed_entries_from_a_peer():
    sim = Sim()
    sim.elect(3)
    sim.settle(3)
    sim.crash(1)
    for _ in range(20):
        sim.submit(3)
    sim.settle(3)
    sim.restart(1)
    source = sim.replicas[2]
    added = sim.replicas[1].install_committed(
        source.committed_after(NO_INDEX, 1000), source.commit_index, source.meta.cluster_id
    )
    assert added == 20
    assert sim.storage[1].entries == sim.storage[2].entries
    assert len(sim.storage[1].orders) == 20


def test_install_committed_leaves_a_conflicting_tail_to_the_leader():
    sim = Sim()
    sim.elect(3)
    sim.settle(3)
    sim.partition(3)
    sim.submit(3)  # only on the old leader
    sim.heal()
    sim.crash(3)
    sim.elect(2)
    sim.submit(2)
    sim.settle(2)
    sim.restart(3)
    source = sim.replicas[2]
    entries = source.committed_after(NO_INDEX, 10)
    assert sim.replicas[3].install_committed(entries, 0, source.meta.cluster_id) == 0
    sim.settle(2)
    assert sim.storage[3].entries == sim.storage[2].entries


def test_abandon_drops_entries_no_follower_was_sent():
    sim = Sim()
    sim.elect(3)
    sim.settle(3)
    sim.partition(3)
    first = sim.submit(3)
    sim.submit(3)
    leader = sim.replicas[3]
    held = list(sim.storage[3].entries)
    assert leader.abandon(first.index) == held
    assert leader.last_index == NO_INDEX and sim.storage[3].entries == []
    # Once an entry was sent (the follower may hold it), it cannot be abandoned.
    again = sim.submit(3)
    leader.make_append(1, 64)
    assert leader.abandon(again.index) == []
    assert leader.last_index == again.index


def test_stale_reply_and_rejection_from_a_higher_term_step_the_leader_down():
    sim = Sim()
    sim.elect(3)
    sim.settle(3)
    leader = sim.replicas[3]
    request = leader.make_append(1, 64)
    reply = AppendReply(term=leader.term + 5, success=False, last_index=0)
    leader.on_append_reply(1, request, reply, sim.now)
    assert leader.role == Role.FOLLOWER and leader.term == 6


def test_quorum_of_one_commits_at_once():
    sim = Sim(quorum=1)
    sim.crash(1)
    sim.crash(2)
    assert sim.elect(3)
    entry = sim.submit(3)
    assert sim.replicas[3].commit_index == entry.index
    assert sim.storage[3].orders == {0: entry}


def test_an_absurd_term_is_refused_whole_so_elections_go_on():
    from app.orders.replication import MAX_TERM_LEAP, ImplausibleTerm, VoteRequest

    sim = Sim()
    assert sim.elect(3)
    sim.settle(3)
    absurd = 2**53 - 1
    follower = sim.replicas[1]
    with pytest.raises(ImplausibleTerm):
        follower.handle_vote(VoteRequest(absurd, 2, NO_INDEX))
    request = sim.replicas[3].make_append(1, 64)
    with pytest.raises(ImplausibleTerm):
        follower.handle_append(replace(request, term=absurd))
    with pytest.raises(ImplausibleTerm):
        follower.handle_leader_notice(2, absurd)
    leader = sim.replicas[3]
    leader.on_append_reply(1, request, AppendReply(absurd, False, NO_INDEX), sim.now)
    assert leader.role == Role.LEADER and leader.term == 1  # ignored, as if lost
    assert follower.term == 1 and sim.storage[1].meta.current_term == 1
    # A leap within bounds is an ordinary higher term, and the elections after it go on.
    assert sim.elect(2, term=1 + MAX_TERM_LEAP)
    assert sim.elect(3)
    sim.settle(3)
    assert {r.term for r in sim.replicas.values()} == {2 + MAX_TERM_LEAP}


# Check-quorum and linearizable reads ---------------------------------------------------------


def test_a_leader_cut_from_its_quorum_steps_down_within_one_election_timeout():
    sim = Sim()
    assert sim.elect(3)
    sim.settle(3)
    leader = sim.replicas[3]
    sim.partition(3)  # it still runs, but hears from no peer
    sim.now = 0.4
    sim.send(3)
    sim.deliver()
    assert not leader.check_quorum(sim.now, 0.5) and leader.role == Role.LEADER
    sim.now = 0.6
    assert leader.check_quorum(sim.now, 0.5)
    assert leader.role == Role.FOLLOWER and not leader.ready  # it acknowledges nothing now


def test_check_quorum_keeps_a_leader_that_hears_from_a_majority():
    sim = Sim()
    assert sim.elect(3)
    sim.settle(3)
    sim.partition(1)  # one follower away: 3 and 2 are a quorum
    for step in range(1, 10):
        sim.now = step * 0.2
        sim.send(3)
        sim.deliver()
        assert not sim.replicas[3].check_quorum(sim.now, 0.5)
    assert sim.replicas[3].role == Role.LEADER


def test_a_read_is_answered_only_after_a_quorum_accepts_a_later_round():
    sim = Sim()
    assert sim.elect(3)
    sim.settle(3)
    leader = sim.replicas[3]
    round_ = leader.read_round()
    assert not leader.confirmed(round_)
    assert leader.has_pending(1) and leader.has_pending(2)  # the round goes out at once
    sim.send(3)
    sim.deliver()
    assert leader.confirmed(round_)


def test_a_deposed_leader_that_has_not_noticed_cannot_confirm_a_read():
    """The stale read of the bug report: leader 3 is cut off, 2 leads and commits an order,
    3 still believes it leads; a read at 3 must never be confirmed."""
    sim = Sim()
    assert sim.elect(3)
    sim.settle(3)
    sim.partition(3)
    assert sim.elect(2)
    newer = sim.submit(2)
    sim.settle(2)
    old = sim.replicas[3]
    assert old.role == Role.LEADER and old.committed(newer.index) is None
    round_ = old.read_round()
    sim.send(3)
    sim.deliver()
    assert not old.confirmed(round_)
    sim.heal()
    sim.send(3)
    sim.deliver()  # the followers answer with their newer term: 3 steps down
    assert old.role == Role.FOLLOWER and not old.confirmed(round_)
