"""The ``toystore`` command: one entry point for running and exercising the store.

Each subcommand is a function taking the parsed arguments and returning an exit code; add one
by writing it and registering it in ``build_parser``.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from app.cluster import Cluster, ClusterError
from app.common.config import ConfigError


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def cmd_up(args: argparse.Namespace) -> int:
    """Run the whole store in the foreground until Ctrl-C or SIGTERM."""
    try:
        cluster = Cluster.create(data_dir=args.data_dir, log_dir=args.log_dir)
    except (ConfigError, ClusterError) as exc:
        print(f"toystore: {exc}", file=sys.stderr)
        return 2
    # SIGTERM (from a process manager, or `kill`) takes the same clean path as Ctrl-C.
    signal.signal(signal.SIGTERM, _raise_interrupt)
    reported: set[str] = set()
    try:
        cluster.start()
        for name in cluster.services:
            print(f"{name:<10} {cluster.url(name)}", flush=True)
        print(f"data in {cluster.data_dir}; Ctrl-C stops the store", flush=True)
        while True:
            time.sleep(1)
            # Keep serving with what is left (a crashed replica is survivable), but say so.
            for name, code in cluster.exited().items():
                if name not in reported:
                    reported.add(name)
                    print(f"{name} exited with code {code}", file=sys.stderr, flush=True)
    except KeyboardInterrupt:
        pass
    except ClusterError as exc:
        print(f"toystore: {exc}", file=sys.stderr)
        return 1
    finally:
        # A second Ctrl-C must not interrupt the shutdown and leave services behind.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print("stopping", file=sys.stderr, flush=True)
        cluster.stop()
    return 0


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def cmd_gen_catalog(args: argparse.Namespace) -> int:
    """Write a generated catalog of ``count`` toys as JSON (for benchmarks and eviction tests)."""
    from app.catalog.catalog_data import write_catalog

    written = write_catalog(args.out, args.count)
    print(f"wrote {written} toys to {args.out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="toystore",
        description="An online toy store. Settings come from environment variables "
        "(see README.md).",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    up = commands.add_parser(
        "up", help="run the whole store (Redis, catalog, 3 order replicas, front-end)"
    )
    up.add_argument(
        "--data-dir", type=Path, default=None, help="where the databases live (default: DATA_DIR)"
    )
    up.add_argument(
        "--log-dir",
        type=Path,
        default=None,
        help="write one <service>.log per service here instead of to the terminal",
    )
    up.set_defaults(func=cmd_up)

    gen = commands.add_parser("gen-catalog", help="write a generated catalog of N toys")
    gen.add_argument("--count", type=_positive_int, required=True, help="number of toys")
    gen.add_argument("--out", type=Path, required=True, help="JSON file to write")
    gen.set_defaults(func=cmd_gen_catalog)

    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
