"""The chaos faults scale with the number of order replicas (planned clusters, no processes)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from app.chaos.faults import KILL_FOLLOWER, KILL_LEADER, KILL_MAJORITY, Injector
from app.chaos.history import History
from app.chaos.runner import ChaosOptions, run
from app.cluster import Cluster
from app.common.config import ConfigError
from tests.conftest import _clean_env


@pytest.mark.parametrize(("count", "killed"), [(3, 2), (4, 2), (5, 3), (7, 4)])
def test_kill_majority_leaves_too_few_for_a_quorum(tmp_path: Path, count: int, killed: int):
    cluster = Cluster.create(data_dir=tmp_path, free_ports=True, env=_clean_env(), replicas=count)
    history = History(tmp_path / "history.jsonl")
    injector = Injector(cluster, history, random.Random(count))
    targets = injector.plan(KILL_MAJORITY).targets
    assert len(set(targets)) == killed
    assert count - killed < cluster.settings.quorum_size
    # No replica answers, so the highest id stands for the leader.
    assert injector.plan(KILL_LEADER).targets == [f"replica-{count}"]
    assert injector.plan(KILL_FOLLOWER).targets != [f"replica-{count}"]
    history.close()


@pytest.mark.parametrize("count", [1, 2])
def test_chaos_refuses_replicas_that_survive_no_failure(tmp_path: Path, count: int) -> None:
    options = ChaosOptions(
        duration=1.0,
        replicas=count,
        data_dir=tmp_path / "data",
        log_dir=tmp_path / "logs",
        history=tmp_path / "history.jsonl",
    )
    with pytest.raises(ConfigError, match="survive one failure"):
        run(options, env=_clean_env())
