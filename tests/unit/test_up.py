"""The port check `toystore up` makes before it starts anything."""

from __future__ import annotations

import socket
from pathlib import Path

from app.cluster import Cluster, free_ports
from app.up import port_problems


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
