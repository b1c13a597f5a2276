"""Shared fixtures: real processes on free ports, torn down after use.

- ``free_port()``: a port nobody listens on right now.
- ``redis_url``: a private Redis from redis/redis.conf.
- ``cluster_factory`` (per test, for fault tests) and ``module_cluster_factory`` (per module,
  for read-mostly tests): ``start(services=None, env=None, before_start=None, replicas=None)
  -> Cluster`` starts the stack, or the listed services, on free ports in a temporary data
  dir, with ``env`` laid over the defaults and ``replicas`` order replicas (default: those of
  the default ORDER_REPLICAS). The Cluster has the URLs (``frontend_url``, ``catalog_url``,
  ``replica_urls``, ``redis_url``) and kills or restarts services. Everything is stopped
  afterwards.
- ``stack``: one module-wide Cluster with every service.
- ``small_disks``: tmpfs mounts for a replica's directory, to fill or make read-only (root).

When a test fails, the tail of each service's log is added to its report.
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest

from app.cluster import Cluster
from tests.support import SmallDisks

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _setting_names() -> set[str]:
    source = (ROOT / "app" / "common" / "config.py").read_text()
    # A call may be split over lines: `_int(\n    env, "NAME", ...)`.
    names = set(re.findall(r'_(?:str|int|port|float|bool|choice)\(\s*env, "([A-Z_]+)"', source))
    secrets = set(re.findall(r'_secret\(env, "([A-Z_]+)"', source))
    return names | secrets | {f"{name}_FILE" for name in secrets}


def _clean_env() -> dict[str, str]:
    """This process's environment without the store's settings.

    A developer's exported REDIS_URL or CACHE_ENABLED=0 must not change what the tests run.
    """
    names = _setting_names()
    return {key: value for key, value in os.environ.items() if key not in names}


class ClusterFactory:
    """Starts clusters under one directory and remembers them so they can all be stopped."""

    def __init__(self, base_dir: Path) -> None:
        self.base_dir = base_dir
        self.clusters: list[Cluster] = []

    def __call__(
        self,
        services: list[str] | None = None,
        env: Mapping[str, str] | None = None,
        before_start: Callable[[Cluster], None] | None = None,
        replicas: int | None = None,
    ) -> Cluster:
        where = self.base_dir / f"cluster-{len(self.clusters)}"
        cluster = Cluster.create(
            data_dir=where / "data",
            log_dir=where / "logs",
            free_ports=True,
            services=services,
            env=_clean_env(),
            # Metrics files too stay with the test's other files.
            overrides={"RUN_DIR": str(where / "run"), **(env or {})},
            replicas=replicas,
        )
        self.clusters.append(cluster)
        if before_start is not None:
            before_start(cluster)  # e.g. mount a small disk where a replica keeps its data
        cluster.start()
        return cluster

    def close(self) -> None:
        for cluster in self.clusters:
            cluster.stop()


@pytest.fixture
def cluster_factory(tmp_path: Path) -> Iterator[ClusterFactory]:
    factory = ClusterFactory(tmp_path)
    yield factory
    factory.close()


@pytest.fixture
def small_disks() -> Iterator[SmallDisks]:
    """Request it before ``cluster_factory``, so the disks outlive the cluster on them."""
    disks = SmallDisks()
    yield disks
    disks.close()


@pytest.fixture(scope="module")
def module_cluster_factory(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ClusterFactory]:
    factory = ClusterFactory(tmp_path_factory.mktemp("cluster"))
    yield factory
    factory.close()


@pytest.fixture(scope="module")
def stack(module_cluster_factory: ClusterFactory) -> Cluster:
    return module_cluster_factory()


@pytest.fixture
def redis_url(cluster_factory: ClusterFactory) -> str:
    """A private redis-server from redis/redis.conf on a free port."""
    return cluster_factory(services=["redis"]).redis_url


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if not report.failed:
        return
    clusters: dict[int, Cluster] = {}
    for value in getattr(item, "funcargs", {}).values():
        # A network lab's services are a Cluster too.
        found = (
            value.clusters
            if isinstance(value, ClusterFactory)
            else [getattr(value, "cluster", value)]
        )
        for cluster in found:
            if isinstance(cluster, Cluster):
                clusters[id(cluster)] = cluster
    for cluster in clusters.values():
        for name in cluster.services:
            tail = cluster.log_tail(name)
            if tail:
                report.sections.append((f"{name} log ({cluster.log_path(name)})", tail))
