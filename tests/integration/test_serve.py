"""`toystore serve` (the containers' command) runs a service exactly as `toystore up` does."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from app.cli import main, serve_argv
from app.cluster import ROOT, Cluster, group_members, service_kind, service_names
from app.common.config import Settings
from tests.conftest import _clean_env, free_port

APP_SERVICES = [name for name in service_names(Settings().replicas) if name != "redis"]


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {
            "HOST": "0.0.0.0",
            "FRONTEND_WORKERS": "3",
            "FRONTEND_WORKER_CLASS": "gthread",
            "FRONTEND_THREADS": "5",
            "FRONTEND_HEADER_TIMEOUT": "9",
        },
    ],
    ids=["defaults", "tuned"],
)
def test_serve_runs_the_command_line_of_the_cluster(
    tmp_path: Path, overrides: dict[str, str]
) -> None:
    # Only planned, never started: each child's environment is what `serve` would read.
    cluster = Cluster.create(
        data_dir=tmp_path,
        free_ports=True,
        services=APP_SERVICES,
        env=_clean_env(),
        overrides={**overrides, "SERVICE_THREADS": "7"},
    )
    for name in APP_SERVICES:
        spec = cluster.specs[name]
        assert serve_argv(service_kind(name), Settings.from_env(spec.env)) == spec.argv, name


def test_serve_refuses_a_replica_id_outside_order_replicas(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("REPLICA_ID", "4")
    monkeypatch.setenv("INTERNAL_TOKEN", "t")
    assert main(["serve", "replica"]) == 2
    assert "REPLICA_ID" in capsys.readouterr().err


@pytest.mark.parametrize("service", ["catalog", "replica", "frontend"])
def test_serve_refuses_to_start_without_the_internal_credential(
    service: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("REPLICA_ID", "1")
    monkeypatch.delenv("INTERNAL_TOKEN", raising=False)
    assert main(["serve", service]) == 2
    err = capsys.readouterr().err
    assert err.startswith("toystore: INTERNAL_TOKEN") and len(err.strip().splitlines()) == 1


def _wait_healthy(proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while main(["health", "catalog", "--timeout", "1"]) != 0:
        assert proc.poll() is None, f"serve exited with {proc.returncode}"
        assert time.monotonic() < deadline, "catalog not healthy in time"
        time.sleep(0.1)


def test_serve_becomes_gunicorn_and_answers_health(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = free_port()
    env = {
        **_clean_env(),
        "CATALOG_PORT": str(port),
        "DATA_DIR": str(tmp_path),
        "INTERNAL_TOKEN": "t",
    }
    for key in ("CATALOG_PORT", "DATA_DIR"):
        monkeypatch.setenv(key, env[key])  # for `toystore health` in this process
    assert main(["health", "catalog", "--timeout", "1"]) == 1  # nothing listens yet
    proc = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve", "catalog"],
        env=env,
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        _wait_healthy(proc)
        reply = requests.get(f"http://127.0.0.1:{port}/health", timeout=2)
        assert reply.status_code == 200
        # The exec left Gunicorn's master in serve's own process: signals reach it directly.
        cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes().split(b"\0")
        assert b"gunicorn" in cmdline
        assert (tmp_path / "catalog.sqlite3").exists()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        finally:
            if group_members(proc.pid):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
    assert proc.returncode == 0
