"""The ``toystore`` command: one entry point for running and exercising the store.

Each subcommand is a function taking the parsed arguments and returning an exit code; add one
by writing it and registering it in ``build_parser``.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

import requests

from app import up
from app.bench import run as bench
from app.bench import slowclients
from app.catalog import cli as catalog_cli
from app.chaos.faults import KINDS
from app.client import cli as client_cli
from app.cluster import (
    APP_MODULES,
    REDIS_ACL_FILE,
    REDIS_PASSWORD_FILE,
    TOKEN_FILE,
    Cluster,
    ClusterError,
    _connect_host,
    gunicorn_argv,
    write_redis_acl,
)
from app.common.arguments import kind_list
from app.common.config import REPLICA_BASE_PORT, ConfigError, Settings
from app.common.logs import setup_logging
from app.common.secrets import stored_secret
from app.eval import cli as eval_cli
from app.netlab import cli as netlab_cli


def _interrupt_once(signum: int, frame: object) -> None:
    """The first Ctrl-C or SIGTERM interrupts; later ones are ignored, so that the cleanup it
    starts (stopping processes, unmounting disks) runs to the end."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise KeyboardInterrupt


def bad_settings(exc: ConfigError) -> int:
    """Name every bad setting (several: one a line); the exit code for bad settings."""
    if len(exc.problems) == 1:
        print(f"toystore: {exc.problems[0]}", file=sys.stderr)
    else:
        print(f"toystore: {len(exc.problems)} bad settings:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
    return up.EXIT_BAD_SETTINGS


def cmd_up(args: argparse.Namespace) -> int:
    """Run the whole store in the foreground, restarting crashed services, until SIGINT
    (Ctrl-C), SIGTERM or SIGHUP."""
    try:
        cluster = Cluster.create(
            data_dir=args.data_dir,
            log_dir=args.log_dir,
            replicas=args.replicas,
            die_with_parent=True,
        )
    except ConfigError as exc:
        return bad_settings(exc)
    except ClusterError as exc:
        print(f"toystore: {exc}", file=sys.stderr)
        return up.EXIT_BAD_SETTINGS
    setup_logging("supervisor", cluster.settings.log_level)
    return up.run(cluster)


def service_port(kind: str, settings: Settings) -> int:
    """The port an app service listens on: the one the other services are told to reach it at."""
    if kind == "catalog":
        return settings.catalog_port
    if kind == "frontend":
        return settings.frontend_port
    if settings.replica_id not in settings.replicas:
        raise ConfigError(
            f"REPLICA_ID must be one of the ids in ORDER_REPLICAS {sorted(settings.replicas)}, "
            f"got {settings.replica_id}"
        )
    return settings.replica_port(settings.replica_id)


def serve_argv(kind: str, settings: Settings) -> list[str]:
    """What ``toystore serve`` runs: the Gunicorn command line ``toystore up`` uses too."""
    return gunicorn_argv(kind, settings, service_port(kind, settings))


def cmd_serve(args: argparse.Namespace) -> int:
    """Run one service in the foreground, as a container's main process.

    Gunicorn replaces this process, so signals from ``docker stop`` reach its master directly.
    """
    try:
        settings = Settings.from_env()
        settings.require_internal_token()
        argv = serve_argv(args.service, settings)
    except ConfigError as exc:
        return bad_settings(exc)
    os.execv(argv[0], argv)


def cmd_health(args: argparse.Namespace) -> int:
    """Exit 0 if the service on this machine answers GET /health with 200 (for health checks)."""
    try:
        settings = Settings.from_env()
        port = service_port(args.service, settings)
    except ConfigError as exc:
        return bad_settings(exc)
    url = f"http://{_connect_host(settings.host)}:{port}/health"
    try:
        healthy = requests.get(url, timeout=args.timeout).status_code == 200
    except requests.RequestException:
        healthy = False
    if not healthy:
        print(f"toystore: {args.service} is not healthy at {url}", file=sys.stderr)
    return 0 if healthy else 1


def cmd_secrets(args: argparse.Namespace) -> int:
    """Make the store's secrets in a directory (for compose or hosts of their own): the
    internal token, the Redis password and Redis's ACL file; existing ones are kept."""
    stored_secret(args.directory / TOKEN_FILE)
    write_redis_acl(
        args.directory / REDIS_ACL_FILE, stored_secret(args.directory / REDIS_PASSWORD_FILE)
    )
    print(f"secrets in {args.directory}: {TOKEN_FILE}, {REDIS_PASSWORD_FILE}, {REDIS_ACL_FILE}")
    return 0


def cmd_gen_catalog(args: argparse.Namespace) -> int:
    """Write a generated catalog of ``count`` toys as JSON (for benchmarks and eviction tests)."""
    from app.catalog.catalog_data import write_catalog

    written = write_catalog(args.out, args.count)
    print(f"wrote {written} toys to {args.out}")
    return 0


def cmd_chaos(args: argparse.Namespace) -> int:
    """Run faults under concurrent shoppers and check the history (or only check one)."""
    from app.chaos.checker import check
    from app.chaos.runner import ChaosOptions, run

    if args.check_only:
        report = check(args.history, args.data_dir, redis_url=args.redis_url)
    else:
        short = args.short
        options = ChaosOptions(
            duration=args.duration or (30.0 if short else 300.0),
            shoppers=args.shoppers,
            replicas=args.replicas,
            seed=args.seed,
            min_gap=args.min_gap if args.min_gap is not None else (0.3 if short else 1.0),
            max_gap=args.max_gap if args.max_gap is not None else (1.0 if short else 4.0),
            min_hold=0.5,
            max_hold=1.5 if short else 3.0,
            data_dir=args.data_dir,
            log_dir=args.data_dir.parent / "logs",
            history=args.history,
            kinds=args.kinds,
        )
        # Ctrl-C or SIGTERM must still stop the store's processes (they run in sessions of
        # their own, so nothing else would) and unmount the run's disks; a background job
        # starts with SIGINT ignored.
        signal.signal(signal.SIGTERM, _interrupt_once)
        signal.signal(signal.SIGINT, _interrupt_once)
        try:
            report = run(options)
        except (ConfigError, ClusterError) as exc:
            print(f"toystore: {exc}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print("toystore: chaos run interrupted", file=sys.stderr)
            return 130
    print(report.render())
    print(f"history: {args.history}")
    return 0 if report.passed else 1


def _version() -> str:
    try:
        return metadata.version("toystore")
    except metadata.PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="toystore",
        description="An online toy store. Settings come from environment variables "
        "(see README.md).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    up = commands.add_parser(
        "up", help="run the whole store (Redis, catalog, the order replicas, front-end)"
    )
    up.add_argument(
        "--data-dir", type=Path, default=None, help="where the databases live (default: DATA_DIR)"
    )
    up.add_argument(
        "--replicas",
        type=client_cli.at_least_one,
        default=None,
        help=f"run N order replicas, ids 1..N on ports {REPLICA_BASE_PORT + 1}.. "
        "(default: those of ORDER_REPLICAS)",
    )
    up.add_argument(
        "--log-dir",
        type=Path,
        default=None,
        help="write one <service>.log per service here instead of to the terminal",
    )
    up.set_defaults(func=cmd_up)

    serve = commands.add_parser(
        "serve", help="run one service in the foreground (the containers' command)"
    )
    serve.add_argument("service", choices=tuple(APP_MODULES))
    serve.set_defaults(func=cmd_serve)

    health = commands.add_parser(
        "health", help="exit 0 if a service on this machine answers its health check"
    )
    health.add_argument("service", choices=tuple(APP_MODULES))
    health.add_argument("--timeout", type=float, default=2.0, help="seconds (default: 2)")
    health.set_defaults(func=cmd_health)

    made = commands.add_parser(
        "secrets", help="make the internal token and the Redis password (and ACL) in DIRECTORY"
    )
    made.add_argument("directory", type=Path, help="e.g. secrets/ for docker-compose.yml")
    made.set_defaults(func=cmd_secrets)

    gen = commands.add_parser("gen-catalog", help="write a generated catalog of N toys")
    gen.add_argument("--count", type=client_cli.at_least_one, required=True, help="number of toys")
    gen.add_argument("--out", type=Path, required=True, help="JSON file to write")
    gen.set_defaults(func=cmd_gen_catalog)

    bench.register(commands)
    slowclients.register(commands)

    chaos = commands.add_parser(
        "chaos", help="inject random faults under concurrent shoppers, then check consistency"
    )
    chaos.add_argument("--duration", type=float, default=None, help="seconds (default 300)")
    chaos.add_argument(
        "--shoppers", type=client_cli.at_least_one, default=8, help="concurrent shoppers"
    )
    chaos.add_argument(
        "--replicas",
        type=client_cli.at_least_one,
        default=None,
        help="order replicas (default: as many as ORDER_REPLICAS names)",
    )
    chaos.add_argument("--seed", type=int, default=None, help="seed of the fault schedule")
    chaos.add_argument("--min-gap", type=float, default=None, help="least seconds between faults")
    chaos.add_argument("--max-gap", type=float, default=None, help="most seconds between faults")
    chaos.add_argument(
        "--history", type=Path, default=Path("var/chaos/history.jsonl"), help="history file"
    )
    chaos.add_argument(
        "--data-dir", type=Path, default=Path("var/chaos/data"), help="the run's databases"
    )
    chaos.add_argument("--short", action="store_true", help="a 30-second round")
    chaos.add_argument(
        "--kinds",
        type=kind_list(KINDS),
        default=KINDS,
        help=f"comma-separated fault kinds to deal (default: all of {', '.join(KINDS)})",
    )
    chaos.add_argument(
        "--check-only",
        action="store_true",
        help="only check an existing --history against --data-dir (and --redis-url's cache)",
    )
    chaos.add_argument("--redis-url", default=None, help="the run's Redis, for --check-only")
    chaos.set_defaults(func=cmd_chaos)

    client_cli.register(commands)
    eval_cli.register(commands)
    catalog_cli.register(commands)
    netlab_cli.register(commands)

    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
