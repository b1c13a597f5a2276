"""Every setting of every service, read from the environment in this one place.

Each service builds a ``Settings`` once (in its app factory) and passes it down; nothing
else reads ``os.environ``. Defaults run the whole store on one machine.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar
from urllib.parse import parse_qsl, quote, unquote, urlsplit

DEFAULT_REPLICA_COUNT = 3
REPLICA_BASE_PORT = 8100  # on one machine, replica i listens on REPLICA_BASE_PORT + i
MAX_PORT = 65535
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
WORKER_CLASSES = ("gevent", "gthread")  # of the front-end (FRONTEND_WORKER_CLASS)
# Read by prometheus_client itself: set for each service by its Gunicorn command line.
METRICS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"
# Files that need not survive a restart (the metrics' memory-mapped values), kept off the data
# disks: writing to a memory-mapped file on a full disk kills the process with SIGBUS.
DEFAULT_RUN_DIR = Path(tempfile.gettempdir()) / f"toystore-{os.getuid()}"

T = TypeVar("T")


class ConfigError(ValueError):
    """Settings the store cannot run with: every problem found, one sentence each."""

    def __init__(self, *problems: str) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class _Env:
    """The environment being read and every problem found in it so far. A bad setting reads
    as its default and reading goes on, so that ``Settings.from_env`` reports them all."""

    def __init__(self, values: Mapping[str, str]) -> None:
        self.values = values
        self.problems: list[str] = []

    def raw(self, name: str) -> str:
        return self.values.get(name, "").strip()

    def refuse(self, problem: str, default: T) -> T:
        self.problems.append(problem)
        return default


def local_replicas(count: int) -> str:
    """ORDER_REPLICAS for ``count`` replicas on this machine: ids 1..count, replica i on port
    REPLICA_BASE_PORT + i."""
    if count < 1:
        raise ConfigError(f"the number of order replicas must be at least 1, got {count}")
    return ",".join(f"{i}=http://127.0.0.1:{REPLICA_BASE_PORT + i}" for i in range(1, count + 1))


DEFAULT_REPLICAS = local_replicas(DEFAULT_REPLICA_COUNT)


def _str(env: _Env, name: str, default: str) -> str:
    return env.raw(name) or default


def _int(env: _Env, name: str, default: int, minimum: int = 0, maximum: int | None = None) -> int:
    raw = env.raw(name)
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        return env.refuse(f"{name} must be an integer, got {raw!r}", default)
    if value < minimum:
        return env.refuse(f"{name} must be at least {minimum}, got {value}", default)
    if maximum is not None and value > maximum:
        return env.refuse(f"{name} must be at most {maximum}, got {value}", default)
    return value


def _port(env: _Env, name: str, default: int) -> int:
    return _int(env, name, default, minimum=1, maximum=MAX_PORT)


def _float(env: _Env, name: str, default: float) -> float:
    raw = env.raw(name)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        return env.refuse(f"{name} must be a number, got {raw!r}", default)
    if value <= 0:
        return env.refuse(f"{name} must be positive, got {value}", default)
    return value


def _bool(env: _Env, name: str, default: bool) -> bool:
    raw = env.raw(name).lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    return env.refuse(f"{name} must be 0 or 1, got {raw!r}", default)


def _choice(env: _Env, name: str, default: str, choices: tuple[str, ...]) -> str:
    """One of ``choices``, matched in any case and returned as written there."""
    raw = env.raw(name)
    if not raw:
        return default
    for choice in choices:
        if raw.lower() == choice.lower():
            return choice
    return env.refuse(f"{name} must be one of {', '.join(choices)}, got {raw!r}", default)


def _secret(env: _Env, name: str) -> str:
    """``NAME`` itself, else the contents of the file ``NAME_FILE`` names (a mounted secret)."""
    value = env.raw(name)
    path = env.raw(f"{name}_FILE")
    if value or not path:
        return value
    try:
        return Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        return env.refuse(f"{name}_FILE {path!r} cannot be read: {exc.strerror}", "")


REDIS_USER = "toystore"  # the Redis ACL user of the store (the default user is off)
SENTINEL_PASSWORD = "sentinel_password"  # the query parameter of a redis+sentinel:// URL
SENTINEL_SCHEME = "redis+sentinel"
REDIS_SCHEMES = ("redis", "rediss", "unix", SENTINEL_SCHEME)


def with_redis_credentials(url: str, password: str) -> str:
    """``url`` logging in as REDIS_USER with ``password``; unchanged if it names a user or
    password already, or if there is no password."""
    scheme, sep, rest = url.partition("://")
    if not password or not sep or "@" in rest.split("/", 1)[0]:
        return url
    return f"{scheme}://{REDIS_USER}:{quote(password, safe='')}@{rest}"


def without_credentials(url: str) -> str:
    """``url`` without its user, password and query (where ``sentinel_password`` goes): what
    may be written to a log or file. Whatever the credentials hold, unescaped ``/``, ``?`` or
    ``@`` included, they end at the last ``@``: everything up to it goes. A query is never
    shown, since the only one understood is a password (a misspelt one would be too)."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    return f"{scheme}{sep}{rest.rpartition('@')[2].partition('?')[0]}"


@dataclass(frozen=True)
class SentinelURL:
    """A REDIS_URL naming Sentinels rather than a Redis (docs/operations.md):

    ``redis+sentinel://[user:password@]host:port[,host:port...]/service[/db]``, optionally
    ``?sentinel_password=...``. The user and password are for the data nodes (REDIS_PASSWORD
    fills them in as for any REDIS_URL); ``sentinel_password``, for the Sentinels themselves.
    Every Sentinel needs its port; ``db`` is 0 if left out."""

    sentinels: tuple[tuple[str, int], ...]
    service: str
    db: int = 0
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    sentinel_password: str | None = field(default=None, repr=False)


def is_sentinel_url(url: str) -> bool:
    return url.lower().startswith(f"{SENTINEL_SCHEME}://")


def parse_sentinel_url(url: str) -> SentinelURL:
    """The parts of a ``redis+sentinel://`` URL; ConfigError saying what is wrong with it."""
    shown = without_credentials(url)
    rest, _, query = url.partition("://")[2].partition("?")
    netloc, _, path = rest.partition("/")
    userinfo, _, hosts = netloc.rpartition("@")
    items = [item.strip() for item in hosts.split(",")]
    sentinels = tuple(_sentinel_address(item, shown) for item in items if item)
    if not sentinels:
        raise ConfigError(f"REDIS_URL {shown!r} names no Sentinel (host:port,host:port,...)")
    service, _, db = path.partition("/")
    if not service:
        raise ConfigError(f"REDIS_URL {shown!r} names no service (.../<service-name>)")
    if db and not (db.isascii() and db.isdigit()):
        raise ConfigError(f"REDIS_URL {shown!r}: the database must be a number, got {db!r}")
    username, _, password = userinfo.partition(":")
    return SentinelURL(
        sentinels=sentinels,
        service=unquote(service),
        db=int(db or 0),
        username=unquote(username) or None,
        password=unquote(password) or None,
        sentinel_password=_sentinel_password(query, shown),
    )


def _sentinel_address(item: str, shown: str) -> tuple[str, int]:
    try:
        parts = urlsplit(f"//{item}")
        host, port = parts.hostname, parts.port
    except ValueError:  # a port out of range or not a number, or a broken [IPv6] address
        host = port = None
    if not host or not port:
        raise ConfigError(
            f"REDIS_URL {shown!r}: Sentinel {item!r} is not host:port with a port from 1 to "
            f"{MAX_PORT}"
        )
    return host, port


def _sentinel_password(query: str, shown: str) -> str | None:
    """The query's ``sentinel_password``, the one parameter understood; None if not given."""
    password = None
    for name, value in parse_qsl(query, keep_blank_values=True):
        if name != SENTINEL_PASSWORD:
            raise ConfigError(
                f"REDIS_URL {shown!r} has an unknown parameter {name!r}"
                f" (only {SENTINEL_PASSWORD} is understood)"
            )
        password = value or None
    return password


def check_redis_url(url: str) -> None:
    """ConfigError if REDIS_URL cannot name a Redis; empty is fine (the store's own)."""
    if not url:
        return
    scheme, sep, _ = url.partition("://")
    if not sep or scheme.lower() not in REDIS_SCHEMES:
        schemes = ", ".join(f"{name}://" for name in REDIS_SCHEMES)
        raise ConfigError(
            f"REDIS_URL must start with one of {schemes}, got {without_credentials(url)!r}"
        )
    if is_sentinel_url(url):
        parse_sentinel_url(url)


def _has_port(url: str) -> bool:
    try:
        return bool(urlsplit(url.strip()).port)
    except ValueError:  # out of range, or not a number
        return False


def parse_replicas(spec: str) -> dict[int, str]:
    """Parse ``"1=http://host:8101,2=http://host:8102"`` into ``{1: url, 2: url}``.

    Any number of replicas; ids are positive (0 means "not a replica" in REPLICA_ID) and
    unique.
    """
    replicas: dict[int, str] = {}
    for item in spec.split(","):
        item = item.strip()
        if not item:
            continue
        rid, sep, url = item.partition("=")
        if not sep or not rid.strip().isdigit() or not url.strip():
            raise ConfigError(f"ORDER_REPLICAS entry {item!r} is not of the form ID=URL")
        replica_id = int(rid)
        if not _has_port(url):
            raise ConfigError(
                f"ORDER_REPLICAS entry {item!r} needs a URL with a port from 1 to {MAX_PORT}"
            )
        if replica_id < 1:
            raise ConfigError(f"ORDER_REPLICAS ids must be positive, got {item!r}")
        if replica_id in replicas:
            raise ConfigError(f"ORDER_REPLICAS names replica {replica_id} twice")
        replicas[replica_id] = url.strip().rstrip("/")
    if not replicas:
        raise ConfigError("ORDER_REPLICAS names no replica")
    return replicas


@dataclass(frozen=True)
class Settings:
    # Where the services are.
    host: str = "127.0.0.1"
    frontend_port: int = 8000
    catalog_port: int = 8001
    catalog_url: str = "http://127.0.0.1:8001"
    replicas: dict[int, str] = field(default_factory=lambda: parse_replicas(DEFAULT_REPLICAS))
    replica_id: int = 0  # set for an order replica process; 0 elsewhere

    # Redis: the cache and the invalidation channel.
    redis_url: str = ""  # empty: `toystore up` starts its own Redis on redis_port
    redis_port: int = 8379
    cache_enabled: bool = True
    cache_prefix: str = "toystore"
    invalidation_channel: str = "toystore:invalidations"
    lease_ttl_ms: int = 2000
    redis_timeout: float = 0.5

    # Files.
    data_dir: Path = Path("var")
    run_dir: Path = DEFAULT_RUN_DIR
    catalog_data: str = ""  # JSON file of toys; empty: the built-in catalog
    restock_interval: float = 10.0
    restock_amount: int = 100

    # Calls between services.
    http_timeout: float = 2.0
    order_deadline: float = 8.0  # front-end: total time to place one order across failovers

    # Replication.
    write_quorum: str = "majority"  # or "1": asynchronous followers (can lose acked orders)
    heartbeat_interval: float = 0.05
    election_timeout: float = 0.5  # silence after which a leader (or a majority) counts as gone
    commit_timeout: float = 2.0
    replication_batch: int = 512
    sqlite_synchronous: str = "FULL"
    # The purchase saga's outbox: first delay before an undo is resent, doubling up to the max.
    undo_retry_first: float = 0.5
    undo_retry_max: float = 10.0
    # How long an Idempotency-Key deduplicates orders after the order it placed (seconds).
    idempotency_key_ttl: float = 24 * 3600.0

    # Processes.
    frontend_workers: int = 4
    frontend_worker_class: str = "gevent"  # or "gthread": FRONTEND_THREADS threads a worker
    frontend_threads: int = 8
    service_threads: int = 32
    # Seconds a front-end connection has for each request's line and headers, counted from its
    # opening or its previous reply (so also the longest idle keep-alive); then it is closed.
    frontend_header_timeout: int = 30

    # Input bounds.
    max_name_length: int = 64
    max_order_quantity: int = 1000
    max_body_bytes: int = 4096

    log_level: str = "INFO"

    # The store's own credential: every call between services carries it (never logged).
    internal_token: str = field(default="", repr=False)
    # The password of the store's Redis user (REDIS_USER), unless REDIS_URL carries one.
    redis_password: str = field(default="", repr=False)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """The settings of ``environ`` (default: this process's environment); raises
        ConfigError naming every bad one."""
        env = _Env(dict(os.environ if environ is None else environ))
        catalog_port = _port(env, "CATALOG_PORT", 8001)
        try:
            replicas = parse_replicas(_str(env, "ORDER_REPLICAS", DEFAULT_REPLICAS))
        except ConfigError as exc:
            replicas = env.refuse(str(exc), {})
        redis_url = _str(env, "REDIS_URL", "")
        try:
            check_redis_url(redis_url)
        except ConfigError as exc:
            redis_url = env.refuse(str(exc), "")
        settings = cls(
            host=_str(env, "HOST", "127.0.0.1"),
            frontend_port=_port(env, "FRONTEND_PORT", 8000),
            catalog_port=catalog_port,
            catalog_url=_str(env, "CATALOG_URL", f"http://127.0.0.1:{catalog_port}").rstrip("/"),
            replicas=replicas,
            replica_id=_int(env, "REPLICA_ID", 0),
            redis_url=redis_url,
            redis_port=_port(env, "REDIS_PORT", 8379),
            cache_enabled=_bool(env, "CACHE_ENABLED", True),
            cache_prefix=_str(env, "CACHE_PREFIX", "toystore"),
            invalidation_channel=_str(env, "INVALIDATION_CHANNEL", "toystore:invalidations"),
            lease_ttl_ms=_int(env, "CACHE_LEASE_TTL_MS", 2000, minimum=1),
            redis_timeout=_float(env, "REDIS_TIMEOUT", 0.5),
            data_dir=Path(_str(env, "DATA_DIR", "var")),
            run_dir=Path(_str(env, "RUN_DIR", str(cls.run_dir))),
            catalog_data=_str(env, "CATALOG_DATA", ""),
            restock_interval=_float(env, "RESTOCK_INTERVAL", 10.0),
            restock_amount=_int(env, "RESTOCK_AMOUNT", 100, minimum=1),
            http_timeout=_float(env, "HTTP_TIMEOUT", 2.0),
            order_deadline=_float(env, "ORDER_DEADLINE", 8.0),
            write_quorum=_choice(env, "ORDER_WRITE_QUORUM", "majority", ("majority", "1")),
            heartbeat_interval=_float(env, "HEARTBEAT_INTERVAL", 0.05),
            election_timeout=_float(env, "ELECTION_TIMEOUT", 0.5),
            commit_timeout=_float(env, "COMMIT_TIMEOUT", 2.0),
            replication_batch=_int(env, "REPLICATION_BATCH", 512, minimum=1),
            sqlite_synchronous=_choice(
                env, "SQLITE_SYNCHRONOUS", "FULL", ("FULL", "NORMAL", "OFF")
            ),
            undo_retry_first=_float(env, "UNDO_RETRY_FIRST", cls.undo_retry_first),
            undo_retry_max=_float(env, "UNDO_RETRY_MAX", cls.undo_retry_max),
            idempotency_key_ttl=_float(env, "IDEMPOTENCY_KEY_TTL", cls.idempotency_key_ttl),
            frontend_workers=_int(env, "FRONTEND_WORKERS", 4, minimum=1),
            frontend_worker_class=_choice(
                env, "FRONTEND_WORKER_CLASS", cls.frontend_worker_class, WORKER_CLASSES
            ),
            frontend_threads=_int(env, "FRONTEND_THREADS", 8, minimum=1),
            frontend_header_timeout=_int(
                env, "FRONTEND_HEADER_TIMEOUT", cls.frontend_header_timeout, minimum=1
            ),
            service_threads=_int(env, "SERVICE_THREADS", 32, minimum=1),
            max_name_length=_int(env, "MAX_NAME_LENGTH", 64, minimum=1),
            max_order_quantity=_int(env, "MAX_ORDER_QUANTITY", 1000, minimum=1),
            max_body_bytes=_int(env, "MAX_BODY_BYTES", 4096, minimum=256),
            log_level=_choice(env, "LOG_LEVEL", "INFO", LOG_LEVELS),
            internal_token=_secret(env, "INTERNAL_TOKEN"),
            redis_password=_secret(env, "REDIS_PASSWORD"),
        )
        if env.problems:
            raise ConfigError(*env.problems)
        return settings

    def require_internal_token(self) -> str:
        """The internal credential; a service cannot run without it."""
        if not self.internal_token:
            raise ConfigError(
                "INTERNAL_TOKEN (or INTERNAL_TOKEN_FILE) must be set to the store's internal"
                " credential, the same for every service"
            )
        return self.internal_token

    @property
    def quorum_size(self) -> int:
        """How many replicas (the leader included) must hold an entry before it commits."""
        if self.write_quorum == "1":
            return 1
        return len(self.replicas) // 2 + 1

    @property
    def effective_redis_url(self) -> str:
        """REDIS_URL, or the Redis `toystore up` starts on REDIS_PORT of this machine, with
        REDIS_PASSWORD as the store's user unless the URL names one. Every service uses this
        one answer, so none caches where another does not publish."""
        url = self.redis_url or f"redis://127.0.0.1:{self.redis_port}/0"
        return with_redis_credentials(url, self.redis_password)

    @property
    def leader_call_timeout(self) -> float:
        """How long the front-end waits for a leader's answer to an order or an election:
        the leader's own catalog call and commit wait, plus a margin, so a slow but healthy
        leader is not mistaken for a dead one."""
        return self.http_timeout + self.commit_timeout + 1.0

    def service_name(self, kind: str) -> str:
        """The name this process goes by in its logs and metrics: ``frontend``, ``catalog``,
        or ``order-<REPLICA_ID>`` for a replica (``kind`` is one of those three kinds)."""
        return f"order-{self.replica_id}" if kind == "replica" else kind

    def metrics_dir(self, service: str, port: int) -> Path:
        """Where the Gunicorn workers of ``service`` on ``port`` keep their Prometheus values
        (multiprocess mode), emptied at every start: under RUN_DIR, one per service."""
        return (self.run_dir / "metrics" / f"{service}-{port}").resolve()

    def replica_port(self, replica_id: int) -> int:
        url = self.replicas[replica_id]
        return int(url.rsplit(":", 1)[1].split("/", 1)[0])
