"""``toystore up``: the whole store in the foreground, supervised (docs/operations.md).

``run`` refuses to start on a busy port, starts every service, then watches them: a service
that exits unasked is restarted when ``app/supervisor.py`` says so, and every crash and restart
is one JSON log line. SIGINT, SIGTERM and SIGHUP (the terminal closed) stop the store; the
cluster is made with ``die_with_parent`` so that even a SIGKILLed ``toystore up`` leaves no
service behind.
"""

from __future__ import annotations

import errno
import logging
import signal
import socket
import sys
import time
from typing import NoReturn

from app.cluster import Cluster, ClusterError, service_kind
from app.common.config import without_credentials
from app.common.logs import log_event
from app.common.signals import restore_signals, set_stop_signals
from app.supervisor import Supervisor, exit_fields

# Exit codes of `toystore up`.
EXIT_STOPPED = 0  # stopped by SIGINT, SIGTERM or SIGHUP
EXIT_FAILED = 1  # a service did not start, or would not stop
EXIT_BAD_SETTINGS = 2  # nothing was started
EXIT_PORT_BUSY = 3  # a port is taken or cannot be had; nothing was started

POLL_INTERVAL = 0.1  # seconds between two looks at the services
RESTART_TIMEOUT = 30.0  # seconds a restarted service has to answer its health check

PORT_SETTINGS = {"redis": "REDIS_PORT", "catalog": "CATALOG_PORT", "frontend": "FRONTEND_PORT"}

log = logging.getLogger(__name__)


class StopRequested(KeyboardInterrupt):
    """A stop signal arrived; raised in the main thread wherever it was."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _stop(signum: int, frame: object) -> None:
    # Later signals are ignored, so that the shutdown this one starts runs to the end.
    set_stop_signals(signal.SIG_IGN)
    raise StopRequested(signum)


def port_setting(name: str) -> str:
    """The setting that gives a service its port."""
    return "ORDER_REPLICAS" if service_kind(name) == "replica" else PORT_SETTINGS[name]


def bind_error(host: str, port: int) -> OSError | None:
    """Why a server could not listen on ``host:port`` now; None if it could."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        # As Gunicorn and Redis do: a port left in TIME_WAIT is free to them, and so to us.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            return exc
    return None


def port_problems(cluster: Cluster) -> list[str]:
    """One sentence per port the cluster needs that it cannot have: given to two services,
    held by another process, or not to be had on HOST at all."""
    problems = []
    owners: dict[int, str] = {}
    host = cluster.settings.host
    for name in cluster.services:
        port = cluster.specs[name].port
        given = f"{port_setting(name)} gives it to {name}"
        if port in owners:
            first = owners[port]
            problems.append(
                f"port {port} is given to both {first} ({port_setting(first)}) "
                f"and {name} ({port_setting(name)})"
            )
            continue
        owners[port] = name
        error = bind_error(host, port)
        if error is None:
            continue
        if error.errno == errno.EADDRINUSE:
            problems.append(f"port {port} is in use by another process ({given})")
        else:
            problems.append(f"cannot listen on {host} port {port} ({given}): {error.strerror}")
    return problems


def run(cluster: Cluster) -> int:
    """Start the cluster and supervise it until a stop signal; return the exit code."""
    problems = port_problems(cluster)
    if problems:
        for problem in problems:
            print(f"toystore: {problem}; nothing was started", file=sys.stderr)
        return EXIT_PORT_BUSY
    previous = set_stop_signals(_stop)
    code = EXIT_STOPPED
    try:
        cluster.start()
        for name in cluster.services:
            print(f"{name:<10} {without_credentials(cluster.url(name))}", flush=True)
        print(f"data in {cluster.data_dir}; Ctrl-C stops the store", flush=True)
        supervise(cluster, Supervisor(cluster.services))
    except StopRequested as stop:
        log_event(log, "stopping", signal=signal.Signals(stop.signum).name)
    except ClusterError as exc:
        log_event(log, "store failed", logging.ERROR, error=str(exc))
        code = EXIT_FAILED
    finally:
        set_stop_signals(signal.SIG_IGN)
        if not _stop_all(cluster):
            code = EXIT_FAILED
        restore_signals(previous)
    log_event(log, "stopped", exit_code=code)
    return code


def _stop_all(cluster: Cluster) -> bool:
    try:
        cluster.stop()
    except ClusterError as exc:
        log_event(log, "stop failed", logging.ERROR, error=str(exc))
        return False
    return True


def supervise(cluster: Cluster, supervisor: Supervisor) -> NoReturn:
    """Restart crashed services, forever (a stop signal ends it with StopRequested)."""
    started = time.monotonic()
    for name in cluster.services:
        supervisor.started(name, started)
    log_event(log, "store started", services=list(cluster.services))
    while True:
        for name, returncode in cluster.exited().items():
            restart = supervisor.crashed(name, time.monotonic())
            log_event(
                log,
                "service crashed",
                logging.WARNING,
                child=name,
                **exit_fields(returncode),
                restart_in=restart.delay,
                crashes=restart.crashes,
            )
            _sweep(cluster, name)
        for name in supervisor.due(time.monotonic()):
            _restart(cluster, supervisor, name)
        time.sleep(POLL_INTERVAL)


def _restart(cluster: Cluster, supervisor: Supervisor, name: str) -> None:
    try:
        cluster.start_one(name, RESTART_TIMEOUT)
    except ClusterError as exc:
        _sweep(cluster, name)
        restart = supervisor.crashed(name, time.monotonic())
        log_event(
            log,
            "restart failed",
            logging.WARNING,
            child=name,
            error=str(exc),
            restart_in=restart.delay,
            crashes=restart.crashes,
        )
        return
    supervisor.started(name, time.monotonic())
    log_event(log, "service restarted", child=name, pid=cluster.pid(name))


def _sweep(cluster: Cluster, name: str) -> None:
    """Kill what is left of a service (Gunicorn's workers) and wait until its port is free.
    Something that outlives that is logged, not fatal: the restart meets it and backs off."""
    try:
        cluster.kill(name)
    except ClusterError as exc:
        log_event(
            log,
            "service left processes or its port behind",
            logging.WARNING,
            child=name,
            error=str(exc),
        )
