"""``toystore netlab``: the store in the network lab, and removing what a lab left behind."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from app.client.cli import at_least_one
from app.cluster import ClusterError
from app.common.arguments import kind_list
from app.common.config import ConfigError, without_credentials
from app.netlab import partitions
from app.netlab.hosts import BRIDGE, BRIDGE_ADDRESS, LabError, cleanup
from app.netlab.lab import CLIENT, Lab
from app.netlab.partitions import PARTITION_KINDS, PartitionOptions


def cmd_up(args: argparse.Namespace) -> int:
    """Run the store in the lab until Ctrl-C or SIGTERM, then remove the lab."""
    try:
        lab = Lab.create(args.run_dir, replicas=args.replicas)
    except (ConfigError, LabError) as exc:
        print(f"toystore: {exc}", file=sys.stderr)
        return 2
    try:
        with lab:
            for name, host in lab.hosts.items():
                # The Redis URL carries the password, which is not for the terminal.
                where = (
                    without_credentials(lab.cluster.url(name))
                    if name in lab.cluster.specs
                    else "(no service)"
                )
                print(f"{name:<10} {host.netns:<16} {host.address:<12} {where}", flush=True)
            print(
                f"front-end at {lab.frontend_url}, from the {CLIENT} host "
                f"(ip netns exec {lab.hosts[CLIENT].netns} ...) and from this machine "
                f"(through {BRIDGE}, {BRIDGE_ADDRESS})",
                flush=True,
            )
            print(f"logs in {lab.cluster.log_dir}; Ctrl-C stops the lab", flush=True)
            while True:
                time.sleep(1)
    except KeyboardInterrupt:
        pass
    except (LabError, ClusterError) as exc:
        print(f"toystore: {exc}", file=sys.stderr)
        return 1
    print("lab stopped and removed", file=sys.stderr, flush=True)
    return 0


def cmd_partition(args: argparse.Namespace) -> int:
    """Cut links under shoppers for ``--duration`` seconds, then check the history."""
    options = PartitionOptions(
        duration=args.duration,
        shoppers=args.shoppers,
        replicas=args.replicas,
        seed=args.seed,
        run_dir=args.run_dir,
        history=args.run_dir / "history.jsonl",
        kinds=args.kinds,
    )
    try:
        report = partitions.run(options)
    except (ConfigError, LabError, ClusterError) as exc:
        print(f"toystore: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("toystore: partition run interrupted; lab removed", file=sys.stderr)
        return 130
    print(report.render())
    print(f"history: {options.history}")
    return 0 if report.passed else 1


def cmd_cleanup(args: argparse.Namespace) -> int:
    """Remove every namespace and link a lab left on this machine (processes in them too)."""
    try:
        removed = cleanup()
    except LabError as exc:
        print(f"toystore: {exc}", file=sys.stderr)
        return 1
    for name in removed:
        print(f"removed {name}")
    if not removed:
        print("no lab leftovers")
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    netlab = commands.add_parser(
        "netlab",
        help="the store in a network lab: a network namespace per service (root)",
        description="Each service on a host of its own (a network namespace on a bridge), "
        "so links between them can be cut with nftables. Needs root, iproute2 and nftables. "
        "See docs/netlab.md.",
    )
    actions = netlab.add_subparsers(dest="netlab_command", required=True, metavar="ACTION")
    up = actions.add_parser("up", help="start the store in the lab; Ctrl-C removes the lab")
    up.add_argument(
        "--run-dir",
        type=Path,
        default=Path("var/netlab"),
        help="the lab's data and logs (default: var/netlab)",
    )
    up.add_argument(
        "--replicas",
        type=at_least_one,
        default=None,
        help="run N order replicas, ids 1..N (default: those of ORDER_REPLICAS)",
    )
    up.set_defaults(func=cmd_up)

    defaults = PartitionOptions()
    partition = actions.add_parser(
        "partition",
        help="cut links under concurrent shoppers, then check the history (docs/reliability.md)",
        description="Each partition kind once in turn, then in shuffled rounds, under "
        "shoppers with a history; then heal, settle and check: no acknowledged order lost, "
        "no order number with two contents, no stale read, stock conserved, identical logs.",
    )
    partition.add_argument(
        "--duration",
        type=float,
        default=defaults.duration,
        help=f"seconds (default {defaults.duration:g})",
    )
    partition.add_argument(
        "--shoppers", type=at_least_one, default=defaults.shoppers, help="concurrent shoppers"
    )
    partition.add_argument(
        "--replicas",
        type=at_least_one,
        default=None,
        help="order replicas, ids 1..N (default: those of ORDER_REPLICAS)",
    )
    partition.add_argument("--seed", type=int, default=None, help="seed of the schedule")
    partition.add_argument(
        "--run-dir",
        type=Path,
        default=defaults.run_dir,
        help=f"the run's data, logs and history.jsonl (default: {defaults.run_dir})",
    )
    partition.add_argument(
        "--kinds",
        type=kind_list(PARTITION_KINDS),
        default=PARTITION_KINDS,
        help=f"comma-separated partition kinds (default: all of {', '.join(PARTITION_KINDS)})",
    )
    partition.set_defaults(func=cmd_partition)
    clean = actions.add_parser("cleanup", help="remove every namespace and link a lab left behind")
    clean.set_defaults(func=cmd_cleanup)
