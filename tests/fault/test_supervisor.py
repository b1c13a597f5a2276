"""`toystore up` as an operator runs it: a real process with real services under it.

A SIGKILLed service comes back and the store serves again; SIGTERM and SIGHUP stop
everything; a SIGKILLed `toystore up` leaves no service behind; a busy port and bad settings
are refused before anything starts.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from app.cluster import ROOT, free_ports, group_members, port_listening
from tests.conftest import _clean_env
from tests.support import new_key, order, wait_for

# One replica and one front-end worker: a small store starts in about a second.
LEAN = {"FRONTEND_WORKERS": "1", "SERVICE_THREADS": "4", "RESTOCK_INTERVAL": "3600"}
CATALOG_APP = "app.catalog:create_app()"


@dataclass
class Up:
    """A `toystore up` on free ports, its output in files."""

    proc: subprocess.Popen[bytes]
    ports: dict[str, int]
    stdout: Path
    stderr: Path

    @property
    def frontend(self) -> str:
        return f"http://127.0.0.1:{self.ports['FRONTEND_PORT']}"

    def services(self) -> dict[int, str]:
        """Pid -> command line of every process `toystore up` started (its children)."""
        found = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            with contextlib.suppress(OSError):
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                if ppid == self.proc.pid:
                    found[int(entry.name)] = (entry / "cmdline").read_text().replace("\0", " ")
        return found

    def events(self) -> list[dict]:
        """The supervisor's log lines (the services log to files of their own)."""
        return [json.loads(line) for line in self.stderr.read_text().splitlines()]


def up_env(**settings: str) -> tuple[dict[str, str], dict[str, int]]:
    frontend, catalog, redis_port, replica = free_ports(4)
    ports = {"FRONTEND_PORT": frontend, "CATALOG_PORT": catalog, "REDIS_PORT": redis_port}
    env = {
        **_clean_env(),
        **LEAN,
        **{name: str(port) for name, port in ports.items()},
        "ORDER_REPLICAS": f"1=http://127.0.0.1:{replica}",
        **settings,
    }
    return env, {**ports, "replica-1": replica}


def up_argv(tmp_path: Path) -> list[str]:
    return [
        sys.executable, "-m", "app.cli", "up",
        "--data-dir", str(tmp_path / "data"),
        "--log-dir", str(tmp_path / "logs"),
    ]  # fmt: skip


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Up]:
    """A running `toystore up`, ready for orders; whatever is left of it is killed after."""
    env, ports = up_env()
    stdout, stderr = tmp_path / "up.out", tmp_path / "up.err"
    with stdout.open("wb") as out, stderr.open("wb") as err:
        proc = subprocess.Popen(up_argv(tmp_path), env=env, cwd=ROOT, stdout=out, stderr=err)
    up = Up(proc, ports, stdout, stderr)
    groups: set[int] = set()
    try:
        wait_for(lambda: "Ctrl-C stops" in stdout.read_text() or proc.poll() is not None, 60, "up")
        assert proc.poll() is None, stderr.read_text()
        groups.update(up.services())
        yield up
    finally:
        groups.update(up.services())
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for group in groups:  # only ever needed when the feature under test is broken
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, signal.SIGKILL)


def all_processes(up: Up) -> dict[int, list[int]]:
    """Every service's process group (its pid) and the processes in it."""
    return {pid: group_members(pid) for pid in up.services()}


def assert_all_gone(groups: dict[int, list[int]], ports: dict[str, int], timeout: float) -> None:
    """No process of any of these groups is left (zombies count as gone), no port listens."""
    assert all(groups.values()), f"a service was not running: {groups}"
    wait_for(lambda: not any(group_members(group) for group in groups), timeout, "no service")
    for port in ports.values():
        assert not port_listening(port), port


def catalog_pid(up: Up) -> int | None:
    return next((pid for pid, argv in up.services().items() if CATALOG_APP in argv), None)


@pytest.mark.fault
def test_a_sigkilled_service_is_restarted_and_sigterm_stops_everything(store: Up) -> None:
    session = requests.Session()
    assert order(session, store.frontend, "Tux", 1, new_key()).status_code == 201
    killed = catalog_pid(store)
    assert killed is not None

    os.kill(killed, signal.SIGKILL)
    wait_for(lambda: catalog_pid(store) not in (None, killed), 10, "a new catalog")
    wait_for(lambda: order(session, store.frontend, "Tux", 1, new_key()).ok, 20, "an order")
    crashed = [e for e in store.events() if e["event"] == "service crashed"]
    assert crashed == [
        {
            **crashed[0],
            "level": "warning",
            "service": "supervisor",
            "child": "catalog",
            "signal": "SIGKILL",
            "restart_in": 0.5,
            "crashes": 1,
        }
    ]
    restarted = wait_for(
        lambda: [e for e in store.events() if e["event"] == "service restarted"], 5, "log"
    )
    assert [(e["child"], e["pid"]) for e in restarted] == [("catalog", catalog_pid(store))]

    groups = all_processes(store)
    began = time.monotonic()
    store.proc.send_signal(signal.SIGTERM)
    assert store.proc.wait(timeout=10) == 0
    assert_all_gone(groups, store.ports, timeout=1)
    assert time.monotonic() - began < 8
    assert store.events()[-1]["event"] == "stopped"


def test_sighup_stops_everything(store: Up) -> None:
    groups = all_processes(store)
    store.proc.send_signal(signal.SIGHUP)  # the terminal was closed
    assert store.proc.wait(timeout=10) == 0
    assert_all_gone(groups, store.ports, timeout=1)
    assert {"event": "stopping", "signal": "SIGHUP"}.items() <= store.events()[-2].items()


@pytest.mark.fault
def test_a_sigkilled_supervisor_leaves_no_service_behind(store: Up) -> None:
    groups = all_processes(store)
    assert len(groups) == 4, store.services()  # redis, catalog, replica-1, front-end
    store.proc.kill()
    store.proc.wait()
    # Each service is told by the kernel (SIGTERM) and stops as it would on `kill`.
    assert_all_gone(groups, store.ports, timeout=10)


def test_a_busy_port_is_named_and_nothing_starts(tmp_path: Path) -> None:
    env, ports = up_env()
    with socket.create_server(("127.0.0.1", ports["CATALOG_PORT"])):
        done = subprocess.run(
            up_argv(tmp_path), env=env, cwd=ROOT, capture_output=True, text=True, timeout=30
        )
        assert done.returncode == 3
        assert done.stderr.splitlines() == [
            f"toystore: port {ports['CATALOG_PORT']} is in use by another process "
            "(CATALOG_PORT gives it to catalog); nothing was started"
        ]
    for name, port in ports.items():
        assert not port_listening(port), name
    assert not (tmp_path / "logs").exists()


def test_every_bad_setting_is_listed_and_nothing_starts(tmp_path: Path) -> None:
    env, ports = up_env(LOG_LEVEL="bogus", CATALOG_PORT="70000", FRONTEND_WORKERS="many")
    done = subprocess.run(
        up_argv(tmp_path), env=env, cwd=ROOT, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 2
    lines = done.stderr.splitlines()
    assert lines[0] == "toystore: 3 bad settings:"
    assert sorted(lines[1:]) == [
        "  CATALOG_PORT must be at most 65535, got 70000",
        "  FRONTEND_WORKERS must be an integer, got 'many'",
        "  LOG_LEVEL must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL, got 'bogus'",
    ]
    assert not (tmp_path / "data").exists()
    assert not any(port_listening(port) for port in ports.values())
