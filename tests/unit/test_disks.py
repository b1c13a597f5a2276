"""Lost and failing disks in the replication protocol (replication.py, membership.py), driven
over the simulated network of test_replication.py: a wiped directory comes back as a learner,
a failing disk makes a replica step aside, and nothing committed is ever truncated."""

from __future__ import annotations

import contextlib
import random
from dataclasses import replace

import pytest

from app.orders.membership import Plan, Status, decide, floor_quorum
from app.orders.replication import (
    NO_INDEX,
    AppendRequest,
    Entry,
    Meta,
    NotVoter,
    Role,
    SafetyViolation,
    StorageError,
    VoteRequest,
)
from tests.unit.test_replication import MemoryStorage, Sim


def blank_sim(n: int = 3, **kwargs) -> Sim:
    """A brand-new cluster: every directory blank, so no replica may vote yet."""
    sim = Sim(n, **kwargs)
    for i in sim.ids:
        sim.storage[i] = MemoryStorage(Meta(voter=False, incarnation=f"{i}.0"))
        sim.restart(i)
    return sim


def rounds(sim: Sim, leader: int, count: int = 10) -> None:
    """Send and deliver a few times (``Sim.settle`` waits for every linked peer)."""
    for _ in range(count):
        sim.send(leader)
        sim.deliver()


def acked_keys(sim: Sim, leader: int) -> dict[str, int]:
    r = sim.replicas[leader]
    return {e.key: e.index for e in r.log[: r.commit_index + 1]}


# Forming a cluster -------------------------------------------------------------------


def test_a_brand_new_cluster_forms_once_every_replica_has_answered():
    sim = blank_sim()
    sim.crash(1)
    assert sim.join(3) == Plan.WAIT  # replica 1 might hold the history
    assert not sim.elect(3)
    sim.restart(1)
    assert [sim.join(i) for i in sim.ids] == [Plan.BOOTSTRAP] * 3
    assert all(sim.replicas[i].voter for i in sim.ids)
    assert sim.elect(3)
    sim.settle(3)
    entry = sim.submit(3)
    sim.settle(3)
    assert all(sim.storage[i].entries == [entry] for i in sim.ids)
    cluster = sim.replicas[3].meta.cluster_id
    assert cluster and all(sim.storage[i].meta.cluster_id == cluster for i in sim.ids)


def test_a_single_replica_cluster_forms_by_itself():
    sim = blank_sim(1)
    assert sim.join(1) == Plan.BOOTSTRAP
    assert sim.elect(1)
    assert sim.submit(1).index == 0 and sim.replicas[1].commit_index == 0


# The scenario: a wiped follower must not help elect a leader without the orders --


def _orders_on_two_of_three() -> tuple[Sim, dict[str, int]]:
    sim = Sim()
    assert sim.elect(3)
    sim.settle(3)
    sim.partition(1)  # follower 1 lags (stopped)
    for _ in range(5):
        sim.submit(3)
    sim.settle(3)
    acked = acked_keys(sim, 3)
    assert len(acked) == 5 and sim.replicas[1].commit_index == NO_INDEX
    return sim, acked


def test_a_wiped_follower_rejoins_as_a_learner_and_acknowledged_orders_survive():
    sim, acked = _orders_on_two_of_three()
    sim.wipe(2)  # SIGKILL, data wiped, restarted
    assert sim.join(2) == Plan.LEARN  # the leader has history
    sim.crash(3)  # the leader dies
    sim.heal()  # follower 1 resumes
    assert not sim.elect(1)  # the learner grants no vote
    assert not sim.elect(2)  # and starts no election
    assert not sim.replicas[2].voter
    sim.restart(3)  # only the old leader holds the orders: it must come back
    assert sim.elect(3)
    sim.settle(3)
    for i in sim.ids:
        assert {e.key: e.index for e in sim.storage[i].entries} == acked
    assert sim.join(2) == Plan.LEARN  # now every voter answered: it knows its floor
    assert sim.replicas[2].voter  # synced and promoted


def test_the_learner_rule_is_what_saves_the_orders():
    """Without it (the wiped replica votes as before), the orders are lost: this is the hazard
    the rule exists for, shown on the same schedule."""
    sim, acked = _orders_on_two_of_three()
    sim.wipe(2)
    sim.storage[2].meta = replace(sim.storage[2].meta, voter=True)
    sim.restart(2)
    sim.crash(3)
    sim.heal()
    assert sim.elect(1)  # wins with the blank replica's vote
    sim.settle(1)
    assert not set(acked) & {e.key for e in sim.storage[1].entries}


def test_a_learner_counts_towards_commit_once_it_holds_the_leaders_log():
    sim = Sim()
    assert sim.elect(3)
    sim.settle(3)
    sim.wipe(2)
    sim.crash(1)
    entry = sim.submit(3)
    sim.settle(3)
    assert sim.replicas[3].commit_index == entry.index  # leader + synced learner
    assert sim.storage[2].entries == [entry]
    assert not sim.replicas[2].voter  # replica 1 is down: its floor is not known yet


def test_a_promoted_learner_never_votes_again_in_a_term_its_lost_disk_voted_in():
    sim = Sim()
    assert sim.elect(3, term=5)  # replica 2 voted for 3 in term 5
    sim.settle(3)
    sim.wipe(2)
    assert sim.join(2) == Plan.LEARN
    sim.settle(3)
    learner = sim.replicas[2]
    assert learner.voter and learner.meta.vote_floor >= 5
    # The term on its disk is gone, but the floor remembers: no second vote in term 5.
    assert not learner.handle_vote(VoteRequest(5, 1, NO_INDEX)).granted
    with pytest.raises(Exception, match="above 5"):
        learner.start_election(5)


def test_losing_a_majority_of_disks_refuses_to_elect_rather_than_invent_a_history():
    sim = Sim()
    assert sim.elect(3)
    sim.settle(3)
    sim.submit(3)
    sim.settle(3)
    sim.wipe(1)
    sim.wipe(2)
    assert sim.join(1) == sim.join(2) == Plan.LEARN
    for candidate in sim.ids:
        assert not sim.elect(candidate)
    assert sim.replicas[3].log  # the one history left is kept, not overwritten


def test_a_wiped_follower_is_rebuilt_by_the_leader_from_its_first_entry():
    sim = Sim()
    assert sim.elect(3)
    sim.settle(3)
    entries = [sim.submit(3) for _ in range(30)]
    sim.settle(3)
    sim.wipe(1)
    sim.crash(2)
    more = sim.submit(3)
    sim.settle(3)  # the leader sees a new incarnation and starts replica 1 over
    assert sim.storage[1].entries == entries + [more]
    assert sim.replicas[3].commit_index == more.index


def test_floor_needs_enough_voters_besides_the_learner():
    assert floor_quorum(3, 2) == 2
    assert floor_quorum(5, 3) == 3
    assert floor_quorum(1, 1) == 0
    own = Status(1, "a", "", 0, 0, 0, NO_INDEX, NO_INDEX, False)
    synced = Status(2, "b", "c", 7, 0, 7, 4, 4, True)
    learner = Status(3, "c", "", 9, 0, 0, NO_INDEX, NO_INDEX, False)
    assert decide(own, 2, 2, {2: synced}).plan == Plan.LEARN
    assert decide(own, 2, 2, {2: synced}).floor is None
    assert decide(own, 2, 2, {2: synced, 3: learner}).floor is None  # learners remember nothing
    other = replace(synced, replica_id=3, term=8)
    assert decide(own, 2, 2, {2: synced, 3: other}).floor == 8


# Failing disks -------------------------------------------------------------------------


def test_a_leader_whose_disk_fails_steps_down_and_acknowledges_nothing():
    sim = Sim()
    assert sim.elect(3)
    sim.settle(3)
    kept = sim.submit(3)
    sim.settle(3)
    sim.storage[3].fail = True
    with pytest.raises(StorageError):
        sim.submit(3)
    leader = sim.replicas[3]
    assert leader.role == Role.FOLLOWER and leader.disk_failed
    assert leader.log == [kept] and not leader.can_lead
    with pytest.raises(NotVoter):
        leader.start_election(leader.term + 1)
    assert sim.elect(2)  # a healthy replica leads
    newer = sim.submit(2)
    rounds(sim, 2)
    assert sim.replicas[2].commit_index == newer.index
    # The disk recovers: the replica reloads what it holds and the leader repairs the rest.
    sim.storage[3].fail = False
    sim.replicas[3].reload()
    sim.settle(2)
    assert sim.storage[3].entries == [kept, newer]


def test_a_follower_whose_disk_fails_stops_acknowledging():
    sim = Sim()
    assert sim.elect(3)
    sim.settle(3)
    sim.storage[2].fail = True
    sim.crash(1)
    entry = sim.submit(3)
    rounds(sim, 3)
    assert sim.replicas[3].commit_index == NO_INDEX  # no majority holds it durably
    sim.storage[2].fail = False
    sim.replicas[2].reload()
    sim.settle(3)
    assert sim.replicas[3].commit_index == entry.index


def test_a_failing_write_changes_nothing_in_memory():
    sim = Sim()
    assert sim.elect(3)
    sim.settle(3)
    follower = sim.replicas[1]
    before = (follower.meta, list(follower.log))
    sim.storage[1].fail = True
    request = sim.replicas[3].make_append(1, 64)
    entry = Entry(0, follower.term, "Tux", 1, "k")
    with pytest.raises(StorageError):
        follower.handle_append(replace(request, entries=(entry,), to_end=True))
    assert (follower.meta, follower.log) == before


# Nothing committed is ever truncated ----------------------------------------------------


def test_an_append_that_would_truncate_committed_entries_is_refused():
    sim = Sim()
    assert sim.elect(3)
    sim.settle(3)
    committed = [sim.submit(3) for _ in range(3)]
    sim.settle(3)
    follower = sim.replicas[1]
    assert follower.commit_index == 2
    # A rogue (or buggy) leader of a higher term rewrites index 1.
    rogue = AppendRequest(
        term=follower.term + 1, leader_id=2, prev_index=0, prev_term=committed[0].term,
        entries=(Entry(1, follower.term + 1, "Fox", 1, "other"),), commit_index=0, to_end=True,
    )  # fmt: skip
    with pytest.raises(SafetyViolation):
        follower.handle_append(rogue)
    assert sim.storage[1].entries == committed and follower.log == committed


def test_the_commit_index_never_goes_back():
    sim = Sim()
    assert sim.elect(3)
    sim.settle(3)
    sim.submit(3)
    sim.settle(3)
    r = sim.replicas[1]
    with pytest.raises(SafetyViolation):
        r._save(replace(r.meta, commit_index=NO_INDEX))


# Random schedules with disk loss and disk failures ----------------------------------------


@pytest.mark.parametrize("seed", range(150))
def test_random_schedules_with_lost_and_failing_disks_never_lose_an_acknowledged_order(seed):
    """Like test_replication's random schedules, plus wiped directories (a minority at a time:
    only while every other replica is a voter) and disks that fail and recover. Sim.check()
    asserts after every step that no index commits two entries and no term has two leaders."""
    sim = Sim(seed=seed, loss=0.2, dup=0.2, reorder=True, batch=3)
    rng = random.Random(seed * 13 + 5)
    leader = 3
    sim.elect(leader)
    for _step in range(300):
        action = rng.random()
        r = sim.replicas[leader]
        if action < 0.35 and leader in sim.alive and r.role == Role.LEADER:
            with contextlib.suppress(StorageError):
                sim.submit(leader)
        elif action < 0.62:
            sim.send(leader)
        elif action < 0.82:
            sim.deliver(rng.randint(1, 6))
        elif action < 0.85:
            victim = rng.choice(sim.ids)
            if victim in sim.alive:
                sim.crash(victim)
            else:
                sim.restart(victim)
        elif action < 0.87:
            victim = rng.choice(sim.ids)
            others = [i for i in sim.ids if i != victim]
            if all(sim.storage[i].meta.voter for i in others):
                sim.wipe(victim)
        elif action < 0.89:
            victim = rng.choice(sim.ids)
            sim.storage[victim].fail = not sim.storage[victim].fail
            if not sim.storage[victim].fail and victim in sim.alive:
                sim.replicas[victim].reload()
        elif action < 0.93:
            for i in sorted(sim.alive):
                if not sim.replicas[i].voter:
                    sim.join(i)
        elif sim.alive:
            candidate = rng.choice(sorted(sim.alive))
            if sim.elect(candidate):
                leader = candidate
    # Heal everything: disks work, everyone is up, learners join; then every acknowledged
    # order survives with its number.
    for i in sim.ids:
        sim.storage[i].fail = False
        if i not in sim.alive:
            sim.restart(i)
        else:
            sim.replicas[i].reload()
    sim.heal()
    for _ in range(3):
        for i in sim.ids:
            if not sim.replicas[i].voter:
                sim.join(i)
        for candidate in sorted(sim.ids, reverse=True):
            if sim.replicas[candidate].voter and sim.elect(candidate):
                leader = candidate
                break
        sim.settle(leader)
    logs = {i: sim.storage[i].entries for i in sim.ids}
    assert logs[1] == logs[2] == logs[3]
    committed = {e.key: e.index for e in logs[leader][: sim.replicas[leader].commit_index + 1]}
    for key, number in sim.acked.items():
        assert committed.get(key) == number, f"acknowledged order {key} lost or renumbered"
    assert all(sim.replicas[i].voter for i in sim.ids)
