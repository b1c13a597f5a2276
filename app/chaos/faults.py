"""The faults of a chaos run and how each is injected into and healed on a ``Cluster``.

Each fault is held for a random while, then healed (a restart, SIGCONT for a paused replica,
the filler removed from a full disk), and the next one follows after a random gap. The
schedule deals the kinds of its deck out in shuffled rounds, so even a short run sees many
different kinds.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from app.chaos import disks
from app.chaos.history import History
from app.cluster import Cluster, ClusterError, replica_name
from app.observe import current_leader, replica_health
from app.orders.log import replica_dir

KILL_LEADER = "kill-leader"
KILL_FOLLOWER = "kill-follower"
# As many replicas at once as leaves too few for a quorum: two of three, three of five.
KILL_MAJORITY = "kill-majority"
KILL_CATALOG = "kill-catalog"
KILL_REDIS = "kill-redis"
KILL_FRONTEND_WORKER = "kill-frontend-worker"
PAUSE_REPLICA = "pause-replica"
DISK_LOSS = "disk-loss"
DISK_FULL = "disk-full"
CATALOG_KILL_MID_ORDER = "catalog-kill-mid-order"
KINDS = (
    KILL_LEADER,
    KILL_FOLLOWER,
    KILL_MAJORITY,
    KILL_CATALOG,
    KILL_REDIS,
    KILL_FRONTEND_WORKER,
    PAUSE_REPLICA,
    DISK_LOSS,
    DISK_FULL,
    CATALOG_KILL_MID_ORDER,
)
# Kinds during which the order service may lack a majority or a catalog, so a 503 is honest.
NO_MAJORITY_KINDS = frozenset({KILL_MAJORITY})
NO_CATALOG_KINDS = frozenset({KILL_CATALOG, CATALOG_KILL_MID_ORDER})

_RESTART_ATTEMPTS = 3
REBUILD_TIMEOUT = 15.0  # by then a replica back from a lost disk must vote and be caught up
MID_ORDER_WAIT = 5.0  # longest wait for an order in flight before the catalog is killed anyway
MID_ORDER_DELAY = 0.02  # the kill lands up to this long after an order request went out


@dataclass
class Fault:
    kind: str
    targets: list[str]
    started: float = 0.0
    healed: float = 0.0
    paused_pids: list[int] = field(default_factory=list)


class InFlight:
    """Counts the shoppers' order requests on their way, so that a fault can strike while
    purchases are in flight."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._count = 0

    @contextlib.contextmanager
    def order(self) -> Iterator[None]:
        with self._changed:
            self._count += 1
            self._changed.notify_all()
        try:
            yield
        finally:
            with self._changed:
                self._count -= 1

    def wait(self, timeout: float) -> int:
        """Wait until an order is in flight (at most ``timeout``); how many are."""
        with self._changed:
            self._changed.wait_for(lambda: self._count > 0, timeout)
            return self._count


class Schedule:
    """Which fault comes next and how long it and the gap after it last."""

    def __init__(
        self,
        rng: random.Random,
        deck: Sequence[str],
        hold: tuple[float, float],
        gap: tuple[float, float],
        in_turn_first: bool = False,
    ) -> None:
        self.rng = rng
        self.deck = tuple(deck)
        self.hold = hold
        self.gap = gap
        # Dealt from the end: the first round in the deck's order, or shuffled like the rest.
        self._round: list[str] = list(reversed(self.deck)) if in_turn_first else []

    def next_kind(self) -> str:
        if not self._round:
            self._round = list(self.deck)
            self.rng.shuffle(self._round)
        return self._round.pop()

    def hold_time(self) -> float:
        return self.rng.uniform(*self.hold)

    def gap_time(self) -> float:
        return self.rng.uniform(*self.gap)


class Injector:
    """Injects and heals faults on a running cluster, recording both in the history."""

    def __init__(
        self, cluster: Cluster, history: History, rng: random.Random, in_flight: InFlight
    ) -> None:
        self.cluster = cluster
        self.history = history
        self.rng = rng
        self.in_flight = in_flight
        self.replica_ids = {replica_name(rid): rid for rid in sorted(cluster.replica_urls)}
        # Replicas that lost their disk and were not seen rebuilt: the commit index each must reach.
        self.blank: dict[str, int] = {}

    def plan(self, kind: str) -> Fault | None:
        """The fault of ``kind`` to inject now, or None when it cannot be (more disks would
        be lost than the cluster tolerates)."""
        replicas = list(self.replica_ids)
        leader_id = current_leader(self.cluster)
        leader = replica_name(leader_id) if leader_id is not None else replicas[-1]
        followers = [name for name in replicas if name != leader]
        # The leader half of the time: a slow, full or blank leader is the interesting case.
        leader_or_follower = leader if self.rng.random() < 0.5 else self.rng.choice(followers)
        if kind == KILL_LEADER:
            targets = [leader]
        elif kind == KILL_FOLLOWER:
            targets = [self.rng.choice(followers)]
        elif kind == KILL_MAJORITY:
            survivors = self.cluster.settings.quorum_size - 1
            targets = self.rng.sample(replicas, len(replicas) - survivors)
        elif kind in (KILL_CATALOG, CATALOG_KILL_MID_ORDER):
            targets = ["catalog"]
        elif kind == KILL_REDIS:
            targets = ["redis"]
        elif kind == KILL_FRONTEND_WORKER:
            targets = ["frontend"]
        elif kind in (PAUSE_REPLICA, DISK_FULL):
            targets = [leader_or_follower]
        elif kind == DISK_LOSS:
            health = self._health()
            self.blank = {n: t for n, t in self.blank.items() if not _rebuilt(health, n, t)}
            tolerated = len(replicas) - self.cluster.settings.quorum_size
            if len(self.blank) >= tolerated:
                self.history.record(
                    "note", t=self.history.now(),
                    message=f"{kind} left out this time: {sorted(self.blank)} not rebuilt yet",
                )  # fmt: skip
                return None
            if leader_or_follower in self.blank:
                leader_or_follower = self.rng.choice([n for n in replicas if n not in self.blank])
            targets = [leader_or_follower]
        else:
            raise ValueError(f"unknown fault kind {kind!r}")
        return Fault(kind, targets)

    def inject(self, fault: Fault) -> None:
        detail: dict[str, object] = {}
        if fault.kind == CATALOG_KILL_MID_ORDER:
            detail["in_flight"] = self.in_flight.wait(MID_ORDER_WAIT)
            time.sleep(self.rng.uniform(0.0, MID_ORDER_DELAY))
        fault.started = self.history.now()
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
        elif fault.kind == DISK_FULL:
            detail["filled"] = disks.fill(self._directory(fault.targets[0]))
        else:
            for name in fault.targets:
                self.cluster.kill(name)
            if fault.kind == DISK_LOSS:
                disks.lose(self._directory(fault.targets[0]))
        self.history.record(
            "fault", phase="start", kind=fault.kind, targets=fault.targets, t=fault.started,
            **detail,
        )  # fmt: skip

    def hold(self, fault: Fault, seconds: float) -> None:
        time.sleep(seconds)

    def heal(self, fault: Fault) -> None:
        detail: dict[str, object] = {}
        if fault.kind == PAUSE_REPLICA:
            for pid in fault.paused_pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGCONT)
        elif fault.kind == DISK_FULL:
            disks.free(self._directory(fault.targets[0]))
        elif fault.kind != KILL_FRONTEND_WORKER:  # Gunicorn's master respawns the worker
            for name in fault.targets:
                self.restart(name)
            if fault.kind == DISK_LOSS:
                detail["rebuilt"] = self._await_rebuilt(fault.targets[0])
        fault.healed = self.history.now()
        self.history.record(
            "fault", phase="end", kind=fault.kind, targets=fault.targets, t=fault.healed,
            **detail,
        )  # fmt: skip

    def _directory(self, replica: str) -> Path:
        return replica_dir(self.cluster.data_dir, self.replica_ids[replica])

    def _health(self) -> dict[str, dict]:
        """The /health of every replica that answers, by name."""
        health = replica_health(self.cluster)
        return {name: health[rid] for name, rid in self.replica_ids.items() if rid in health}

    def _await_rebuilt(self, replica: str) -> bool:
        """Wait (at most REBUILD_TIMEOUT) until a replica back from a lost disk votes again and
        holds what the others had committed when it came back."""
        others = self._health()
        others.pop(replica, None)
        target = max((h["commit_index"] for h in others.values()), default=-1)
        deadline = time.monotonic() + REBUILD_TIMEOUT
        while not _rebuilt(self._health(), replica, target):
            if time.monotonic() > deadline:
                self.blank[replica] = target
                return False
            time.sleep(0.1)
        return True

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


def _rebuilt(health: dict[str, dict], replica: str, commit_index: int) -> bool:
    """Whether a replica that lost its disk is a voter again holding ``commit_index``."""
    own = health.get(replica)
    return own is not None and own["voter"] and own["commit_index"] >= commit_index
