"""A partition run: the store in the network lab under shoppers while links are cut and
healed, then the chaos checker over the history (docs/reliability.md, "Network partitions").

The kinds of cut, dealt once each in this order, then in shuffled rounds::

    isolate-leader           the leader cut both ways from every other host
    cut-leader-from-peers    the leader cut from the other replicas only (clients reach it)
    leader-one-way           the leader's calls to the followers dropped; theirs still reach it
    isolate-follower         one follower cut both ways from every other host
    moving-minority          replicas split into a minority and a majority, the minority side
                             moving round the replicas while the fault is held, never healed
                             in between
    cut-frontend-from-redis  the front-end cut both ways from Redis

``partitions_for`` says which cuts each kind makes; it touches no network, so it is unit
tested alone. ``PartitionInjector`` applies them to the lab's links. The shoppers run in the
root namespace, which no cut ever reaches, so every failed request is the store's doing: no
partition kind explains a 503 or a broken connection to the checker.
"""

from __future__ import annotations

import random
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from app.chaos.checker import Report
from app.chaos.faults import Fault, InFlight
from app.chaos.history import History
from app.chaos.runner import RunOptions, drive, new_seed, require_fault_tolerance
from app.cluster import replica_name
from app.common.config import ConfigError
from app.netlab.lab import Lab
from app.netlab.links import (
    HEALED,
    Partition,
    describe,
    isolate,
    moving,
    one_way,
    partial,
    symmetric,
)
from app.observe import current_leader

ISOLATE_LEADER = "isolate-leader"
CUT_LEADER_FROM_PEERS = "cut-leader-from-peers"
LEADER_ONE_WAY = "leader-one-way"
ISOLATE_FOLLOWER = "isolate-follower"
MOVING_MINORITY = "moving-minority"
CUT_FRONTEND_FROM_REDIS = "cut-frontend-from-redis"
PARTITION_KINDS = (
    ISOLATE_LEADER,
    CUT_LEADER_FROM_PEERS,
    LEADER_ONE_WAY,
    ISOLATE_FOLLOWER,
    MOVING_MINORITY,
    CUT_FRONTEND_FROM_REDIS,
)


LEADER_WAIT = 3.0  # seconds a leader-aimed cut waits for the replicas to name a leader
# A run directory holds this file: only such a directory is emptied for a new run.
RUN_MARKER = ".partition-run"


@dataclass(frozen=True)
class PartitionOptions(RunOptions):
    duration: float = 600.0
    run_dir: Path = Path("var/netlab-partition")
    history: Path = Path("var/netlab-partition/history.jsonl")
    kinds: tuple[str, ...] = PARTITION_KINDS
    in_turn_first: bool = True


@dataclass
class PartitionFault(Fault):
    partitions: list[Partition] = field(default_factory=list)  # applied in turn while held


def partitions_for(
    kind: str,
    *,
    leader: str,
    replicas: Sequence[str],
    hosts: Sequence[str],
    rng: random.Random,
) -> tuple[list[str], list[Partition]]:
    """The hosts a fault of ``kind`` aims at, and the partitions it applies one after the
    other while held (a single one for every kind but ``moving-minority``)."""
    followers = [name for name in replicas if name != leader]
    if kind == ISOLATE_LEADER:
        return [leader], [isolate(leader, hosts)]
    if kind == CUT_LEADER_FROM_PEERS:
        return [leader], [partial(leader, followers)]
    if kind == LEADER_ONE_WAY:
        return [leader], [frozenset().union(*(one_way(leader, f) for f in followers))]
    if kind == ISOLATE_FOLLOWER:
        follower = rng.choice(followers)
        return [follower], [isolate(follower, hosts)]
    if kind == MOVING_MINORITY:
        steps = list(moving(list(replicas)))
        start = rng.randrange(len(steps))
        return list(replicas), steps[start:] + steps[:start]
    if kind == CUT_FRONTEND_FROM_REDIS:
        return ["frontend", "redis"], [symmetric("frontend", "redis")]
    raise ValueError(f"unknown partition kind {kind!r}")


class PartitionInjector:
    """Cuts and heals the lab's links, recording both in the history."""

    def __init__(self, lab: Lab, history: History, rng: random.Random) -> None:
        self.lab = lab
        self.history = history
        self.rng = rng
        self.replicas = [replica_name(rid) for rid in sorted(lab.cluster.replica_urls)]

    def plan(self, kind: str) -> PartitionFault:
        leader_id = self._leader()
        if leader_id is None:
            # Just after a heal the replicas may be between leaders: cut the likeliest one,
            # and say in the history that it was a guess.
            self.history.record(
                "note", t=self.history.now(), message=f"{kind}: no leader known, guessed"
            )
        leader = replica_name(leader_id) if leader_id is not None else self.replicas[-1]
        targets, steps = partitions_for(
            kind, leader=leader, replicas=self.replicas, hosts=list(self.lab.hosts), rng=self.rng
        )
        return PartitionFault(kind, targets, partitions=steps)

    def _leader(self) -> int | None:
        deadline = time.monotonic() + LEADER_WAIT
        while (leader_id := current_leader(self.lab.cluster)) is None:
            if time.monotonic() > deadline:
                return None
            time.sleep(0.1)
        return leader_id

    def inject(self, fault: Fault) -> None:
        first = self._steps(fault)[0]
        self.lab.links.apply(first)
        fault.started = self.history.now()
        self.history.record(
            "fault", phase="start", kind=fault.kind, targets=fault.targets, t=fault.started,
            cuts=describe(first),
        )  # fmt: skip

    def hold(self, fault: Fault, seconds: float) -> None:
        """Hold the cuts; a moving partition switches from one to the next without healing."""
        steps = self._steps(fault)
        time.sleep(seconds / len(steps))  # the first is in force since ``inject``
        for step in steps[1:]:
            self.lab.links.apply(step)
            self.history.record("note", t=self.history.now(), message=f"moved: {describe(step)}")
            time.sleep(seconds / len(steps))

    def heal(self, fault: Fault) -> None:
        self.lab.links.apply(HEALED)
        fault.healed = self.history.now()
        self.history.record(
            "fault", phase="end", kind=fault.kind, targets=fault.targets, t=fault.healed
        )

    def heal_everything(self) -> None:
        self.lab.links.apply(HEALED)

    @staticmethod
    def _steps(fault: Fault) -> list[Partition]:
        if not isinstance(fault, PartitionFault):
            raise TypeError(f"not a partition: {fault!r}")
        return fault.partitions


def run(options: PartitionOptions, env: Mapping[str, str] | None = None) -> Report:
    """One partition run in a lab built for it (root only; see ``app.netlab.lab``)."""
    seed = new_seed(options.seed)
    rng = random.Random(seed)
    _fresh(options.run_dir)
    lab = Lab.create(options.run_dir, env=env, replicas=options.replicas)
    require_fault_tolerance(lab.cluster.settings)
    history = History(options.history)
    try:
        with lab:
            injector = PartitionInjector(lab, history, rng)
            return drive(
                lab.cluster, injector, options, history=history, in_flight=InFlight(), rng=rng,
                seed=seed, deck=options.kinds, left_out={},
            )  # fmt: skip
    finally:
        history.close()


def _fresh(run_dir: Path) -> None:
    """Empty ``run_dir`` for a new run; refuse a non-empty one an earlier run did not make
    (this runs as root: a mistyped ``--run-dir`` must not delete a real tree)."""
    if run_dir.is_dir() and any(run_dir.iterdir()) and not (run_dir / RUN_MARKER).is_file():
        raise ConfigError(
            f"{run_dir} is not empty and holds no {RUN_MARKER}: not a partition run's "
            "directory, so it is left alone; pick another --run-dir"
        )
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    (run_dir / RUN_MARKER).touch()
