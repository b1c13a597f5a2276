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
        "--host", cluster.frontend_url, "--p", "0.5", "--think", "0.2",
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


def test_the_web_ui_listens_on_loopback_unless_told_otherwise() -> None:
    # Locust patches the standard library when imported: ask it in a process of its own.
    script = (
        "import sys; from locust.argument_parser import parse_options; "
        "print(parse_options(sys.argv[1:]).web_host)"
    )

    def web_host(*extra: str) -> str:
        argv = [sys.executable, "-c", script, "-f", "locustfile.py", *extra]
        done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr[-2000:]
        return done.stdout.strip().splitlines()[-1]

    assert web_host() == "127.0.0.1"
    assert web_host("--web-host", "0.0.0.0") == "0.0.0.0"
