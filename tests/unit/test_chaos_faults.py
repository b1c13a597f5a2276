"""The chaos faults: they scale with the number of order replicas (planned clusters, no
processes), `--kinds` chooses the deck they are dealt from, and catalog-kill-mid-order's
trigger strikes while orders are in flight."""

from __future__ import annotations

import random
import threading
from pathlib import Path

import pytest

from app.chaos.faults import (
    DISK_LOSS,
    KILL_FOLLOWER,
    KILL_LEADER,
    KILL_MAJORITY,
    KINDS,
    InFlight,
    Injector,
    Schedule,
)
from app.chaos.history import History
from app.chaos.runner import ChaosOptions, run
from app.cli import build_parser
from app.cluster import Cluster
from app.common.config import ConfigError
from tests.conftest import _clean_env


@pytest.mark.parametrize(("count", "killed"), [(3, 2), (4, 2), (5, 3), (7, 4)])
def test_kill_majority_leaves_too_few_for_a_quorum(tmp_path: Path, count: int, killed: int):
    cluster = Cluster.create(data_dir=tmp_path, free_ports=True, env=_clean_env(), replicas=count)
    history = History(tmp_path / "history.jsonl")
    injector = Injector(cluster, history, random.Random(count), InFlight())
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


def test_kinds_option_parses_a_deck_and_defaults_to_every_kind():
    parser = build_parser()
    assert parser.parse_args(["chaos"]).kinds == KINDS
    args = parser.parse_args(["chaos", "--kinds", "disk-loss, kill-leader"])
    assert args.kinds == (DISK_LOSS, KILL_LEADER)


@pytest.mark.parametrize("text", ["disk-loss,no-such-kind", ","])
def test_kinds_option_refuses_unknown_or_no_kinds(text, capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["chaos", "--kinds", text])
    assert "choose from" in capsys.readouterr().err


def test_schedule_deals_only_its_deck_in_full_rounds():
    schedule = Schedule(random.Random(1), (DISK_LOSS, KILL_LEADER), (0.5, 1.0), (1.0, 2.0))
    dealt = [schedule.next_kind() for _ in range(6)]
    for start in (0, 2, 4):
        assert sorted(dealt[start : start + 2]) == [DISK_LOSS, KILL_LEADER]


def test_in_flight_wakes_the_waiter_when_an_order_goes_out():
    in_flight = InFlight()
    assert in_flight.wait(0.01) == 0
    release = threading.Event()

    def order() -> None:
        with in_flight.order():
            release.wait(5)

    shopper = threading.Thread(target=order)
    shopper.start()
    assert in_flight.wait(5) == 1
    release.set()
    shopper.join(5)
    assert in_flight.wait(0.01) == 0
