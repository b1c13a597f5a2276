"""`toystore up` without processes: its port check, and its supervision loop in simulated time."""

from __future__ import annotations

import logging
import signal
import socket
from pathlib import Path

import pytest

from app import up
from app.cluster import Cluster, ClusterError, free_ports
from app.supervisor import Supervisor
from app.up import StopRequested, port_problems


def plan(tmp_path: Path, host: str = "127.0.0.1", **ports: int) -> Cluster:
    frontend, catalog, redis_port, replica = free_ports(4)
    env = {
        "HOST": host,
        "FRONTEND_PORT": str(ports.get("frontend", frontend)),
        "CATALOG_PORT": str(ports.get("catalog", catalog)),
        "REDIS_PORT": str(redis_port),
        "ORDER_REPLICAS": f"1=http://127.0.0.1:{ports.get('replica', replica)}",
    }
    return Cluster.create(data_dir=tmp_path, env=env)


def test_free_ports_pass(tmp_path: Path) -> None:
    assert port_problems(plan(tmp_path)) == []


def test_a_port_held_by_another_process_is_named_with_its_setting(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        assert port_problems(plan(tmp_path, replica=port)) == [
            f"port {port} is in use by another process (ORDER_REPLICAS gives it to replica-1)"
        ]


def test_a_port_given_to_two_services_is_refused(tmp_path: Path) -> None:
    (port,) = free_ports(1)
    assert port_problems(plan(tmp_path, catalog=port, frontend=port)) == [
        f"port {port} is given to both catalog (CATALOG_PORT) and frontend (FRONTEND_PORT)"
    ]


def test_a_host_the_machine_does_not_have_is_named(tmp_path: Path) -> None:
    cluster = plan(tmp_path, host="192.0.2.1")  # TEST-NET-1: no machine has it
    problems = port_problems(cluster)
    assert len(problems) == len(cluster.services)
    assert problems[0].startswith("cannot listen on 192.0.2.1 port "), problems


class Clock:
    """Simulated time for the supervision loop: ``sleep`` moves it on, and ends the loop
    (as a stop signal would) once ``until`` has passed."""

    def __init__(self, until: float) -> None:
        self.now, self.until = 0.0, until

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        if self.now > self.until:
            raise StopRequested(signal.SIGTERM)


class FakeCluster:
    """The catalog crashes at 1 s; its first restart fails, and sweeping up after the crash
    finds a leftover process."""

    services = ("catalog", "frontend")

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.calls: list[tuple[float, str, str]] = []
        self.crashed = False

    def exited(self) -> dict[str, int]:
        if self.clock.now >= 1.0 and not self.crashed:
            self.crashed = True
            return {"catalog": -signal.SIGKILL}
        return {}

    def kill(self, name: str) -> None:
        self.calls.append((self.clock.now, "kill", name))
        if len(self.calls) == 1:
            raise ClusterError("a worker outlived SIGKILL")

    def start_one(self, name: str, timeout: float) -> None:
        self.calls.append((self.clock.now, "start", name))
        if sum(call[1] == "start" for call in self.calls) == 1:
            raise ClusterError(f"{name} exited with code 1 while starting")

    def pid(self, name: str) -> int:
        return 4242


def test_supervise_restarts_with_backoff_and_logs_each_step(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock(until=10.0)
    monkeypatch.setattr(up, "time", clock)
    cluster = FakeCluster(clock)
    with caplog.at_level(logging.INFO, logger=up.log.name), pytest.raises(StopRequested):
        up.supervise(cluster, Supervisor(cluster.services))

    events = [(record.getMessage(), record.fields) for record in caplog.records]
    assert [event for event, _ in events] == [
        "store started",
        "service crashed",
        "service left processes or its port behind",
        "restart failed",
        "service restarted",
    ]
    assert events[1][1] == {
        "child": "catalog",
        "signal": "SIGKILL",
        "restart_in": 0.5,
        "crashes": 1,
    }
    assert events[3][1]["restart_in"] == 1.0 and events[3][1]["crashes"] == 2
    assert events[4][1] == {"child": "catalog", "pid": 4242}
    # Each restart waits out its delay (the loop looks every POLL_INTERVAL).
    crashed_at = cluster.calls[0][0]  # the sweep right after the crash
    starts = [at for at, what, _ in cluster.calls if what == "start"]
    assert starts[0] - crashed_at == pytest.approx(0.5, abs=up.POLL_INTERVAL)
    assert starts[1] - starts[0] == pytest.approx(1.0, abs=up.POLL_INTERVAL)
