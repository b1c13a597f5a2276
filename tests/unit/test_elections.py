"""Replica-run elections (app/orders/elections.py) over the simulated network of
test_replication: pre-votes, stickiness, priority to the highest id, one election at a time.
Each rule has a test that fails without it."""

from __future__ import annotations

import random

import pytest

from app.orders.elections import Candidacy, PreVoteRequest, Verdict
from app.orders.replication import Role
from tests.unit.test_replication import Sim

TIMEOUT = 0.5  # ELECTION_TIMEOUT
TICK = 0.05  # the heartbeat interval, and how often a replica looks at its timer


class Elections:
    """Sim plus what node.py adds: each replica's timer, heartbeats, pre-votes, elections."""

    def __init__(self, sim: Sim) -> None:
        self.sim = sim
        self.timers = {i: Candidacy(i, sim.quorum, TIMEOUT) for i in sim.ids}
        self.heard = dict.fromkeys(sim.ids, 0.0)  # when each last heard its leader (or booted)
        self.started: list[tuple[float, int, int]] = []  # (time, candidate, term) per election

    def leaders(self) -> dict[int, int]:
        """Replica id -> term, of every live replica that thinks it leads."""
        return {
            i: r.term
            for i, r in self.sim.replicas.items()
            if i in self.sim.alive and r.role == Role.LEADER
        }

    def crash(self, i: int) -> None:
        self.sim.crash(i)

    def restart(self, i: int) -> None:
        self.sim.restart(i)
        self.heard[i] = self.sim.now

    def run(self, seconds: float) -> None:
        end = self.sim.now + seconds
        while self.sim.now < end - 1e-9:
            self.sim.now += TICK
            self._heartbeats()
            # Lowest id first: the order in which priority (rule 3) has work to do.
            for i in sorted(self.sim.alive):
                self._look(i)

    def _heartbeats(self) -> None:
        sim = self.sim
        for leader, term in self.leaders().items():
            r = sim.replicas[leader]
            sim.send(leader)
            for dst, src, request in sim.queue:
                if src == leader and sim._link(src, dst) and request.term >= sim.replicas[dst].term:
                    self.heard[dst] = sim.now
            sim.deliver()
            if r.check_quorum(sim.now, TIMEOUT):
                pass  # stepped down: it stops sending
            elif r.role == Role.LEADER and r.term == term:
                self.heard[leader] = sim.now

    def _look(self, i: int) -> None:
        """What the caretaker does each tick: maybe a pre-vote, maybe an election."""
        sim, timer = self.sim, self.timers[i]
        r = sim.replicas[i]
        if not r.can_lead or not timer.due(sim.now, sim.now - self.heard[i], r.role == Role.LEADER):
            return
        request = PreVoteRequest(max(r.term, r.meta.vote_floor) + 1, i)
        replies = {
            pid: sim.replicas[pid].handle_pre_vote(request, self._silent(pid))
            for pid in r.peer_ids
            if sim._link(i, pid)
        }
        if timer.decide(replies, sim.now) != Verdict.STAND:
            return
        self.started.append((sim.now, i, request.term))
        won = sim.elect(i, request.term)
        for pid in r.peer_ids:  # granting a vote starts a voter's silence over
            voter = sim.replicas[pid]
            if voter.term == request.term and voter.meta.voted_for == i:
                self.heard[pid] = sim.now
        if won:
            self.heard[i] = sim.now
        else:
            timer.lost(sim.now)

    def _silent(self, i: int) -> bool:
        r = self.sim.replicas[i]
        return r.role != Role.LEADER and self.sim.now - self.heard[i] >= TIMEOUT


def booted(n: int = 3, seed: int = 0) -> Elections:
    """A fresh cluster that has chosen its first leader by itself."""
    lab = Elections(Sim(n=n, seed=seed))
    lab.run(2 * TIMEOUT)
    return lab


def test_a_new_cluster_elects_its_highest_replica_once():
    lab = booted()
    assert lab.leaders() == {3: 1}
    assert [(who, term) for _, who, term in lab.started] == [(3, 1)]


def test_a_crashed_leader_is_replaced_by_the_highest_live_replica_in_one_election():
    """Rule 3 (priority): replicas 1 and 2 fall silent at the same moment; without deferring,
    both stand and the term churns."""
    lab = booted()
    lab.started.clear()
    crashed_at = lab.sim.now
    lab.crash(3)
    lab.run(3 * TIMEOUT)
    assert lab.leaders() == {2: 2}
    [(when, who, term)] = lab.started
    assert (who, term) == (2, 2)
    assert when - crashed_at <= TIMEOUT + 2 * TICK  # started within one election timeout


def test_a_replica_back_from_a_partition_does_not_depose_a_healthy_leader():
    """Rule 2 (stickiness): replica 1, cut off for 6 s, comes back; the others hear their
    leader, so its pre-vote fails and the leader and term stay."""
    lab = booted()
    lab.sim.partition(1)
    lab.run(6.0)
    lab.sim.heal()
    lab.run(3 * TIMEOUT)
    assert lab.leaders() == {3: 1}
    assert max(r.term for r in lab.sim.replicas.values()) == 1
    assert [who for _, who, _ in lab.started] == [3]


def test_without_pre_votes_the_returning_replica_would_depose_the_leader():
    """The counter-test of rule 1: standing straight away each timeout, the cut-off replica
    raises its term again and again, and back among the others it deposes their leader."""
    lab = booted()
    lab.timers[1].decide = lambda replies, now: Verdict.STAND
    lab.sim.partition(1)
    lab.run(6.0)
    lab.sim.heal()
    lab.run(3 * TIMEOUT)
    assert max(r.term for r in lab.sim.replicas.values()) > 2


def test_a_replica_cut_from_the_leader_alone_does_not_depose_it():
    """Rule 2 (stickiness): replica 1 loses its link to leader 3 but still reaches 2, which
    hears 3 and so refuses 1's pre-vote: the leader and its term stay."""
    lab = booted()
    lab.sim.cut.add(frozenset((1, 3)))
    lab.run(4.0)
    assert lab.leaders() == {3: 1}
    assert max(r.term for r in lab.sim.replicas.values()) == 1


def test_without_stickiness_a_replica_cut_from_the_leader_deposes_it():
    """The counter-test of rule 2: a peer that grants pre-votes while it hears its leader."""
    lab = booted()
    lab._silent = lambda i: lab.sim.replicas[i].role != Role.LEADER
    lab.sim.cut.add(frozenset((1, 3)))
    lab.run(4.0)
    assert max(r.term for r in lab.sim.replicas.values()) > 1


def test_a_leader_cut_from_its_peers_is_replaced_within_one_and_a_half_seconds():
    lab = booted()
    cut_at = lab.sim.now
    lab.sim.partition(3)
    lab.run(1.5)
    leaders = lab.leaders()
    assert 3 not in leaders  # check-quorum: it stepped down
    assert leaders == {2: 2}
    assert lab.started[-1][0] - cut_at <= 2 * TIMEOUT


def test_higher_replicas_that_cannot_win_hold_the_others_back_only_once():
    """Rule 3's "once": of five, leader 5 crashes, 3 is cut off, and 4 reaches only 1. Neither
    2 nor 4 can gather a quorum of pre-votes, yet both grant 1's: 1 defers to them once, then
    stands and leads. Deferring for good would leave the cluster without a leader."""
    lab = booted(n=5)
    lab.crash(5)
    lab.sim.partition(3)
    lab.sim.cut.add(frozenset((4, 2)))
    lab.run(4 * TIMEOUT)
    assert lab.leaders() == {1: 2}


def test_a_replica_whose_disk_fails_neither_stands_nor_is_deferred_to():
    lab = booted(n=5)
    lab.sim.storage[4].fail = True
    lab.sim.replicas[4].disk_failed = True
    crashed_at = lab.sim.now
    lab.crash(5)
    lab.run(3 * TIMEOUT)
    assert lab.leaders() == {3: 2}
    [(when, who, _)] = lab.started[1:]
    assert who == 3 and when - crashed_at <= TIMEOUT + 2 * TICK


def test_pre_vote_changes_nothing():
    lab = booted()
    follower = lab.sim.replicas[1]
    before = (follower.term, follower.meta)
    reply = follower.handle_pre_vote(PreVoteRequest(99, 2), leader_silent=True)
    assert reply.granted and (follower.term, follower.meta) == before
    assert not follower.handle_pre_vote(PreVoteRequest(99, 2), leader_silent=False).granted
    assert not lab.sim.replicas[3].handle_pre_vote(PreVoteRequest(99, 2), True).granted


@pytest.mark.parametrize("seed", range(20))
def test_random_crashes_and_partitions_keep_one_leader_per_term_and_heal_to_one(seed):
    """Safety (Sim.check: never two leaders in a term, nothing committed lost) under random
    crashes and partitions; liveness: once all is healed, one leader within 2 s, and then no
    further election."""
    rng = random.Random(seed)
    lab = booted(n=5, seed=seed)
    for _ in range(15):
        lab.sim.heal()
        for i in rng.sample(lab.sim.ids, rng.randint(0, 2)):
            if i in lab.sim.alive:
                lab.crash(i)
            else:
                lab.restart(i)
        if rng.random() < 0.5:
            lab.sim.partition(*rng.sample(lab.sim.ids, rng.randint(1, 2)))
        lab.run(rng.uniform(0.2, 1.5))
    lab.sim.heal()
    for i in lab.sim.ids:
        if i not in lab.sim.alive:
            lab.restart(i)
    lab.run(2.0)
    assert len(lab.leaders()) == 1, lab.leaders()
    elections = len(lab.started)
    lab.run(3.0)
    assert len(lab.started) == elections, lab.started[elections:]
