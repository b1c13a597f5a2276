"""A short partition run in the suite: every partition kind under eight shoppers in the lab,
then the chaos checker over the history, the replicas, the catalog and the cache
(`make partition` runs ten minutes; docs/reliability.md, "Network partitions")."""

from __future__ import annotations

import json

import pytest

from app.netlab.partitions import MOVING_MINORITY, PARTITION_KINDS, PartitionOptions, run
from tests.conftest import _clean_env

pytestmark = pytest.mark.netlab


def test_short_partition_round_keeps_every_guarantee(tmp_path):
    options = PartitionOptions(
        duration=30.0,
        shoppers=8,
        replicas=3,
        min_gap=0.3,
        max_gap=1.0,
        min_hold=1.0,
        max_hold=2.0,
        run_dir=tmp_path / "run",
        history=tmp_path / "history.jsonl",
    )
    report = run(options, env=_clean_env())
    assert report.passed, report.render()
    assert set(report.faults) == set(PARTITION_KINDS), report.render()
    assert report.acked_orders > 100, report.render()
    assert report.committed_orders >= report.acked_orders, report.render()
    records = [json.loads(line) for line in options.history.read_text().splitlines()]
    starts = [r for r in records if r["type"] == "fault" and r["phase"] == "start"]
    assert all(r["cuts"] for r in starts)
    assert [r["kind"] for r in starts[: len(PARTITION_KINDS)]] == list(PARTITION_KINDS)
    moves = [r for r in records if r["type"] == "note" and r["message"].startswith("moved:")]
    assert len(moves) >= 2 * report.faults[MOVING_MINORITY]
