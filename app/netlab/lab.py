"""The whole store in the network lab: every service on a host of its own, links to cut.

::

    with Lab.create(Path("var/netlab"), replicas=3) as lab:   # builds the hosts, starts all
        lab.links.cut(isolate("replica-3", lab.hosts))         # see app/netlab/links.py
        replica_health(lab.cluster)                            # from the root namespace
        lab.run_on(CLIENT, [lab.toystore, "client", "--url", lab.frontend_url])
        lab.links.heal()
    # every service stopped, every namespace, link and table removed

Each service runs as ``ip netns exec tsl-<service> toystore serve <service>`` (Redis as
redis-server) with ``HOST`` set to its own address and the others' lab addresses in
``CATALOG_URL``, ``ORDER_REPLICAS`` and ``REDIS_URL``; the ports are the configured ones, since
each host has its own address. ``lab.cluster`` is a ``Cluster`` over those services, so
killing, restarting, health and the chaos helpers work as they do on one machine; the data
directory has the same layout (``data/catalog.sqlite3``, ``data/replica-<id>/``), so the chaos
checker reads it too. Leaving the ``with`` block, by an exception, Ctrl-C, SIGTERM or SIGHUP,
stops everything and removes the hosts.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from app.cluster import (
    Cluster,
    Ports,
    ServiceSpec,
    own_redis_password,
    redis_argv,
    replica_name,
    service_env,
    service_kind,
    service_names,
    start_tiers,
    store_env,
    store_internal_token,
)
from app.common.config import Settings, local_replicas, with_redis_credentials
from app.common.logs import log_event
from app.common.signals import Handler, raise_interrupt, restore_signals, set_stop_signals
from app.netlab.hosts import (
    Host,
    LabError,
    build,
    cleanup,
    leftovers,
    missing_requirements,
    plan_hosts,
)
from app.netlab.links import Links

log = logging.getLogger(__name__)

CLIENT = "client"  # the host the shoppers run on: no service, only a way in to the front-end


@dataclass
class Lab:
    """The store's services on lab hosts. Build it with ``Lab.create``."""

    hosts: dict[str, Host]
    cluster: Cluster
    links: Links
    toystore: str  # the `toystore` command the hosts run
    python: str
    _previous_handlers: dict[int, Handler] = field(default_factory=dict)

    @classmethod
    def create(
        cls,
        run_dir: Path,
        *,
        env: Mapping[str, str] | None = None,
        overrides: Mapping[str, str] | None = None,
        replicas: int | None = None,
        python: str = sys.executable,
    ) -> Lab:
        """Plan a lab; nothing is built or started until ``start``.

        ``env`` and ``overrides`` are as for ``Cluster.create``; ``replicas`` replaces
        ``ORDER_REPLICAS`` with ids 1..n. Data goes to ``run_dir/data``, one log per service to
        ``run_dir/logs``. A ``REDIS_URL`` in the environment is ignored: the lab runs its own.
        ``INTERNAL_TOKEN`` and ``REDIS_PASSWORD`` are made and kept in the data directory
        when unset, as ``toystore up`` does.
        """
        base = dict(os.environ if env is None else env)
        base.update(overrides or {})
        if replicas is not None:
            base["ORDER_REPLICAS"] = local_replicas(replicas)
        settings = Settings.from_env(base)
        ports = Ports.from_settings(settings)
        names = service_names(ports.replicas)
        hosts = plan_hosts([*names, CLIENT])
        run_dir = run_dir.resolve()
        data_dir = run_dir / "data"
        toystore = Path(python).parent / "toystore"
        if not toystore.is_file():
            raise LabError(f"no toystore command beside {python} (run `make install`)")

        redis_url = f"redis://{hosts['redis'].address}:{ports.redis}/0"
        redis_password = own_redis_password(settings, data_dir)
        internal_token = store_internal_token(settings, data_dir)
        urls = {name: f"http://{hosts[name].address}:{ports.of(name)}" for name in names} | {
            "redis": with_redis_credentials(redis_url, redis_password)
        }
        shared = store_env(
            base,
            redis_url=redis_url,
            redis_password=redis_password,
            internal_token=internal_token,
            catalog_url=urls["catalog"],
            catalog_port=ports.catalog,
            frontend_port=ports.frontend,
            replica_urls={rid: urls[replica_name(rid)] for rid in ports.replicas},
            data_dir=data_dir,
            catalog_data=settings.catalog_data,
        )
        specs = {}
        for name in names:
            host = hosts[name]
            if name == "redis":
                command, health = redis_argv(ports.redis, host.address, data_dir), urls[name]
            else:
                command, health = (
                    [str(toystore), "serve", service_kind(name)],
                    f"{urls[name]}/health",
                )
            env_ = {**service_env(shared, name), "HOST": host.address}
            specs[name] = ServiceSpec(
                name, host.argv(command), env_, ports.of(name), health, netns=host.netns
            )
        cluster = Cluster(
            settings=Settings.from_env(shared),
            ports=ports,
            data_dir=data_dir,
            log_dir=run_dir / "logs",
            tiers=start_tiers(ports.replicas),
            services=names,
            specs=specs,
            redis_url=urls["redis"],
            internal_token=internal_token,
            urls=urls,
        )
        return cls(hosts, cluster, Links(hosts), str(toystore), python)

    @property
    def frontend_url(self) -> str:
        return self.cluster.frontend_url

    # Lifecycle.

    def start(self, timeout: float = 30.0) -> None:
        """Build the hosts and their tables of cuts, then start every service, healthy."""
        problem = missing_requirements()
        if problem:
            raise LabError(problem)
        found = leftovers()
        if found:
            raise LabError(
                f"a lab is already set up on this machine ({', '.join(found)}); "
                "`toystore netlab cleanup` removes it"
            )
        try:
            build(self.hosts.values())
            self.links.install()
            self.cluster.start(timeout=timeout)
        except BaseException:
            self.stop()
            raise
        log_event(log, "lab started", hosts={n: h.address for n, h in self.hosts.items()})

    def stop(self) -> None:
        """Stop every service, then remove every host, link and table (even if a service
        would not die)."""
        # A second Ctrl-C must not cut the cleanup short and leave hosts behind.
        previous = set_stop_signals(signal.SIG_IGN)
        try:
            try:
                self.cluster.stop()
            finally:
                removed = cleanup()
                log_event(log, "lab removed", removed=len(removed))
        finally:
            restore_signals(previous)

    def __enter__(self) -> Lab:
        # SIGTERM and SIGHUP, like Ctrl-C, leave the `with` block through __exit__.
        self._previous_handlers = set_stop_signals(raise_interrupt)
        try:
            self.start()  # removes what it built if it fails
        except BaseException:
            restore_signals(self._previous_handlers)
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        try:
            self.stop()
        finally:
            restore_signals(self._previous_handlers)

    # Inside the hosts.

    def run_on(
        self, host: str, argv: Sequence[str], timeout: float = 60.0
    ) -> subprocess.CompletedProcess[str]:
        """Run a command inside a host (e.g. shoppers on the client host) and wait for it."""
        return subprocess.run(
            self.hosts[host].argv(argv), capture_output=True, text=True, timeout=timeout
        )

    def can_connect(self, src: str, dst: str, timeout: float = 1.0) -> bool:
        """Whether host ``src`` opens a TCP connection to ``dst``'s service within ``timeout``."""
        address, port = self.hosts[dst].address, self.cluster.specs[dst].port
        code = (
            "import socket\n"
            f"socket.create_connection(({address!r}, {port}), timeout={timeout}).close()"
        )
        return self.run_on(src, [self.python, "-c", code], timeout=timeout + 10).returncode == 0
