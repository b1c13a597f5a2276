"""The faults of a chaos run and how each is injected into and healed on a ``Cluster``.

Each fault is held for a random while, then healed (a restart, or SIGCONT for a paused
replica), and the next one follows after a random gap. The schedule deals the kinds out in
shuffled rounds, so even a short run sees many different kinds.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import time
from dataclasses import dataclass, field

from app.chaos.history import History
from app.cluster import Cluster, ClusterError, replica_name
from app.observe import current_leader

KILL_LEADER = "kill-leader"
KILL_FOLLOWER = "kill-follower"
# As many replicas at once as leaves too few for a quorum: two of three, three of five.
KILL_MAJORITY = "kill-majority"
KILL_CATALOG = "kill-catalog"
KILL_REDIS = "kill-redis"
KILL_FRONTEND_WORKER = "kill-frontend-worker"
PAUSE_REPLICA = "pause-replica"
KINDS = (
    KILL_LEADER,
    KILL_FOLLOWER,
    KILL_MAJORITY,
    KILL_CATALOG,
    KILL_REDIS,
    KILL_FRONTEND_WORKER,
    PAUSE_REPLICA,
)
# Kinds during which the order service may lack a majority or a catalog, so a 503 is honest.
NO_MAJORITY_KINDS = frozenset({KILL_MAJORITY})
NO_CATALOG_KINDS = frozenset({KILL_CATALOG})

_RESTART_ATTEMPTS = 3


@dataclass
class Fault:
    kind: str
    targets: list[str]
    started: float = 0.0
    healed: float = 0.0
    paused_pids: list[int] = field(default_factory=list)


class Schedule:
    """Which fault comes next and how long it and the gap after it last."""

    def __init__(
        self, rng: random.Random, hold: tuple[float, float], gap: tuple[float, float]
    ) -> None:
        self.rng = rng
        self.hold = hold
        self.gap = gap
        self._round: list[str] = []

    def next_kind(self) -> str:
        if not self._round:
            self._round = list(KINDS)
            self.rng.shuffle(self._round)
        return self._round.pop()

    def hold_time(self) -> float:
        return self.rng.uniform(*self.hold)

    def gap_time(self) -> float:
        return self.rng.uniform(*self.gap)


class Injector:
    """Injects and heals faults on a running cluster, recording both in the history."""

    def __init__(self, cluster: Cluster, history: History, rng: random.Random) -> None:
        self.cluster = cluster
        self.history = history
        self.rng = rng

    def plan(self, kind: str) -> Fault:
        replicas = [replica_name(rid) for rid in sorted(self.cluster.replica_urls)]
        leader_id = current_leader(self.cluster)
        leader = replica_name(leader_id) if leader_id is not None else replicas[-1]
        followers = [name for name in replicas if name != leader]
        if kind == KILL_LEADER:
            targets = [leader]
        elif kind == KILL_FOLLOWER:
            targets = [self.rng.choice(followers)]
        elif kind == KILL_MAJORITY:
            survivors = self.cluster.settings.quorum_size - 1
            targets = self.rng.sample(replicas, len(replicas) - survivors)
        elif kind == KILL_CATALOG:
            targets = ["catalog"]
        elif kind == KILL_REDIS:
            targets = ["redis"]
        elif kind == KILL_FRONTEND_WORKER:
            targets = ["frontend"]
        elif kind == PAUSE_REPLICA:
            # The paused leader is the interesting case (a slow node that still thinks it
            # leads), so it is paused half of the time.
            targets = [leader if self.rng.random() < 0.5 else self.rng.choice(followers)]
        else:
            raise ValueError(f"unknown fault kind {kind!r}")
        return Fault(kind, targets)

    def inject(self, fault: Fault) -> None:
        fault.started = self.history.now()
        detail: dict[str, object] = {}
        if fault.kind == KILL_FRONTEND_WORKER:
            master = self.cluster.pid("frontend")
            workers = [pid for pid in self.cluster.processes("frontend") if pid != master]
            if workers:
                victim = self.rng.choice(workers)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(victim, signal.SIGKILL)
                detail["pid"] = victim
        elif fault.kind == PAUSE_REPLICA:
            fault.paused_pids = self.cluster.processes(fault.targets[0])
            for pid in fault.paused_pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGSTOP)
        else:
            for name in fault.targets:
                self.cluster.kill(name)
        self.history.record(
            "fault", phase="start", kind=fault.kind, targets=fault.targets, t=fault.started,
            **detail,
        )  # fmt: skip

    def heal(self, fault: Fault) -> None:
        if fault.kind == PAUSE_REPLICA:
            for pid in fault.paused_pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGCONT)
        elif fault.kind != KILL_FRONTEND_WORKER:  # Gunicorn's master respawns the worker
            for name in fault.targets:
                self.restart(name)
        fault.healed = self.history.now()
        self.history.record(
            "fault", phase="end", kind=fault.kind, targets=fault.targets, t=fault.healed
        )

    def restart(self, name: str) -> None:
        """Restart a killed service; a start can fail on a busy machine, so try again."""
        for attempt in range(1, _RESTART_ATTEMPTS + 1):
            try:
                self.cluster.restart(name)
                return
            except ClusterError as exc:
                self.history.record(
                    "note", t=self.history.now(), message=f"restart of {name} failed: {exc}"
                )
                if attempt == _RESTART_ATTEMPTS:
                    raise
                time.sleep(1.0)

    def heal_everything(self) -> None:
        """After the run: every paused process resumed, every service running."""
        for name in self.cluster.services:
            for pid in self.cluster.processes(name):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGCONT)
            if not self.cluster.is_running(name):
                self.restart(name)
