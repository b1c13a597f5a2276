"""A short chaos round in the suite: random faults of every kind (disk-full only as root)
under eight shoppers, then the checker over the history, the replicas, the catalog and the
cache (docs/reliability.md)."""

from __future__ import annotations

import pytest

from app.chaos.runner import ChaosOptions, run
from tests.conftest import _clean_env

pytestmark = pytest.mark.fault


def test_short_chaos_round_keeps_every_guarantee(tmp_path):
    options = ChaosOptions(
        duration=28.0,
        shoppers=8,
        min_gap=0.3,
        max_gap=1.0,
        min_hold=0.5,
        max_hold=1.5,
        data_dir=tmp_path / "data",
        log_dir=tmp_path / "logs",
        history=tmp_path / "history.jsonl",
    )
    report = run(options, env=_clean_env())
    assert report.passed, report.render()
    assert sum(report.faults.values()) >= 6, report.render()
    assert len(report.faults) >= 4, report.render()
    assert report.acked_orders > 100, report.render()
