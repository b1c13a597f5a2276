"""locustfile.py headless against a real store: shoppers run for a few seconds, none fails."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_locust_headless_run_has_no_failures(cluster_factory, tmp_path: Path) -> None:
    cluster = cluster_factory()
    prefix = tmp_path / "locust"
    locust = Path(sys.executable).with_name("locust")
    argv = [
        str(locust), "-f", str(ROOT / "locustfile.py"),
        "--headless", "--users", "3", "--spawn-rate", "3", "--run-time", "4s",
        "--host", cluster.frontend_url, "--p", "0.5",
        "--csv", str(prefix), "--only-summary", "--loglevel", "WARNING",
    ]  # fmt: skip
    run = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr[-3000:]

    with (tmp_path / "locust_stats.csv").open() as handle:
        rows = {row["Name"]: row for row in csv.DictReader(handle)}
    assert int(rows["Aggregated"]["Failure Count"]) == 0
    assert int(rows["query"]["Request Count"]) > 0
    assert int(rows["order"]["Request Count"]) > 0
    assert int(rows["order-check"]["Request Count"]) > 0
