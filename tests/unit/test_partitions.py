"""The partition run's cuts, kind by kind, without a network (app/netlab/partitions.py)."""

from __future__ import annotations

import random

import pytest

from app.chaos.faults import Schedule
from app.common.config import ConfigError
from app.netlab.links import Cut, isolate, one_way, partial, symmetric
from app.netlab.partitions import (
    CUT_FRONTEND_FROM_REDIS,
    CUT_LEADER_FROM_PEERS,
    ISOLATE_FOLLOWER,
    ISOLATE_LEADER,
    LEADER_ONE_WAY,
    MOVING_MINORITY,
    PARTITION_KINDS,
    RUN_MARKER,
    _fresh,
    partitions_for,
)

REPLICAS = ["replica-1", "replica-2", "replica-3"]
HOSTS = ["redis", "catalog", *REPLICAS, "frontend", "client"]


def cuts(kind: str, leader: str = "replica-3", seed: int = 0):
    return partitions_for(
        kind, leader=leader, replicas=REPLICAS, hosts=HOSTS, rng=random.Random(seed)
    )


def test_isolating_the_leader_cuts_it_from_every_host_both_ways():
    targets, steps = cuts(ISOLATE_LEADER, leader="replica-2")
    assert targets == ["replica-2"]
    assert steps == [isolate("replica-2", HOSTS)]
    assert Cut("frontend", "replica-2") in steps[0] and Cut("replica-2", "redis") in steps[0]


def test_cutting_the_leader_from_its_peers_leaves_clients_a_way_in():
    targets, [step] = cuts(CUT_LEADER_FROM_PEERS)
    assert targets == ["replica-3"]
    assert step == partial("replica-3", ["replica-1", "replica-2"])
    assert all("frontend" not in (cut.src, cut.dst) for cut in step)


def test_the_one_way_cut_drops_only_the_leaders_calls_to_its_followers():
    _, [step] = cuts(LEADER_ONE_WAY, leader="replica-1")
    assert step == one_way("replica-1", "replica-2") | one_way("replica-1", "replica-3")
    assert Cut("replica-2", "replica-1") not in step


@pytest.mark.parametrize("seed", range(5))
def test_an_isolated_follower_is_never_the_leader(seed):
    [target], [step] = cuts(ISOLATE_FOLLOWER, leader="replica-3", seed=seed)
    assert target in ("replica-1", "replica-2")
    assert step == isolate(target, HOSTS)


@pytest.mark.parametrize("seed", range(5))
def test_a_moving_minority_visits_every_replica_and_never_heals_between(seed):
    targets, steps = cuts(MOVING_MINORITY, seed=seed)
    assert targets == REPLICAS
    assert len(steps) == 3 and all(steps)  # no step is the healed network
    alone = set()
    for step in steps:
        (minority,) = [r for r in REPLICAS if all(Cut(r, o) in step for o in REPLICAS if o != r)]
        alone.add(minority)
        assert all(Cut(h, r) not in step for h in ("frontend", "catalog") for r in REPLICAS)
    assert alone == set(REPLICAS)


def test_cutting_the_frontend_from_redis_touches_nothing_else():
    assert cuts(CUT_FRONTEND_FROM_REDIS) == (
        ["frontend", "redis"],
        [symmetric("frontend", "redis")],
    )


def test_every_kind_is_known_and_a_stranger_is_refused():
    assert all(cuts(kind)[1] for kind in PARTITION_KINDS)
    with pytest.raises(ValueError):
        cuts("unplug-everything")


def test_the_first_round_deals_every_kind_in_turn_then_rounds_are_shuffled():
    schedule = Schedule(random.Random(3), PARTITION_KINDS, (1, 2), (1, 2), in_turn_first=True)
    first = [schedule.next_kind() for _ in PARTITION_KINDS]
    assert first == list(PARTITION_KINDS)
    later = [[schedule.next_kind() for _ in PARTITION_KINDS] for _ in range(4)]
    assert all(sorted(r) == sorted(PARTITION_KINDS) for r in later)
    assert any(r != list(PARTITION_KINDS) for r in later)


def test_a_run_directory_is_emptied_only_if_a_run_made_it(tmp_path):
    precious = tmp_path / "home"
    precious.mkdir()
    (precious / "thesis.tex").write_text("years of work")
    with pytest.raises(ConfigError, match="left alone"):
        _fresh(precious)
    assert (precious / "thesis.tex").exists()
    run_dir = tmp_path / "run"
    _fresh(run_dir)  # new: made, and marked
    (run_dir / "history.jsonl").write_text("{}")
    _fresh(run_dir)  # an earlier run's: emptied
    assert sorted(p.name for p in run_dir.iterdir()) == [RUN_MARKER]
