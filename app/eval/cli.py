"""``toystore eval`` and ``toystore crash-experiment``: the experiments of docs/evaluation.md."""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from app.client.cli import at_least_one, probability
from app.outputs import DOCS, VAR, add_update_docs, chosen


def _out_dir(args: argparse.Namespace) -> Path:
    return chosen(args.out_dir, args.update_docs, DOCS / "eval", VAR / "eval")


def _work_dir(given: Path | None) -> tempfile.TemporaryDirectory | None:
    """A temporary directory for the stacks' data and logs, unless one was given (kept)."""
    return None if given is not None else tempfile.TemporaryDirectory(prefix="toystore-eval-")


def cmd_eval(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from app.eval.latency import plot, read_csv, sweep, write_csv

    out_dir = _out_dir(args)
    if args.plot_only:
        written = plot(read_csv(out_dir / "latency.csv"), out_dir)
        print("wrote " + ", ".join(str(path) for path in written))
        return 0
    temporary = _work_dir(args.work_dir)
    work_dir = args.work_dir or Path(temporary.name)
    per_point = (args.requests // args.clients) * args.clients
    total = per_point * len(args.p) * (1 if args.cache_only else 2)
    try:
        with tqdm(total=total, unit="req", file=sys.stderr, disable=None) as bar:
            points = sweep(
                work_dir,
                requests=args.requests,
                p_values=args.p,
                clients=args.clients,
                caches=(True,) if args.cache_only else (True, False),
                on_step=bar.update,
            )
    finally:
        if temporary is not None:
            temporary.cleanup()
    csv_path = out_dir / "latency.csv"
    write_csv(points, csv_path)
    written = [csv_path, *plot(points, out_dir)]
    print(f"{'cache':<6} {'p':>4} {'request':<12} {'count':>6} {'mean ms':>8} {'p99 ms':>8}")
    for pt in points:
        print(
            f"{pt.cache:<6} {pt.p:>4} {pt.request_type:<12} {pt.count:>6} "
            f"{pt.mean_ms:>8.2f} {pt.p99_ms:>8.2f}"
        )
    print("wrote " + ", ".join(str(path) for path in written))
    # Every row of a point repeats that point's counts: take each point once.
    problems = sum({(pt.cache, pt.p): pt.errors + pt.mismatches for pt in points}.values())
    if problems:
        print(f"{problems} errors or mismatches during the sweep; see the CSV", file=sys.stderr)
    return 1 if problems else 0


def cmd_crash(args: argparse.Namespace) -> int:
    from app.eval.crash import run_crash_experiment, write_section

    temporary = _work_dir(args.work_dir)
    try:
        report = run_crash_experiment(
            args.work_dir or Path(temporary.name),
            rounds=args.rounds,
            clients=args.clients,
            p=args.p,
            down_seconds=args.down,
            settle_seconds=args.settle,
            seed=args.seed,
            replicas=args.replicas,
        )
    finally:
        if temporary is not None:
            temporary.cleanup()
    section = report.markdown()
    doc = chosen(args.doc, args.update_docs, DOCS / "evaluation.md", VAR / "eval" / "crash.md")
    write_section(doc, section)
    print(section)
    print(f"report written to {doc}")
    return 0 if report.ok else 1


def register(commands: argparse._SubParsersAction) -> None:
    latency = commands.add_parser(
        "eval",
        help="latency sweep: p = 0..0.8, cache on and off; writes CSV and PNG plots",
        description="Starts a private stack (free ports, temporary data) per cache setting and "
        "runs the shoppers at each p. Writes latency.csv and the plots to var/eval/ (or "
        "--out-dir, or docs/eval/ with --update-docs).",
    )
    latency.add_argument(
        "--requests",
        type=at_least_one,
        default=3000,
        help="queries and orders per point, over all clients (default 3000)",
    )
    latency.add_argument(
        "--p",
        type=probability,
        nargs="+",
        default=[0.0, 0.2, 0.4, 0.6, 0.8],
        help="order probabilities to measure (default 0 0.2 0.4 0.6 0.8)",
    )
    latency.add_argument(
        "--clients", type=at_least_one, default=5, help="concurrent shoppers (default 5)"
    )
    latency.add_argument("--cache-only", action="store_true", help="measure with the cache on only")
    latency.add_argument(
        "--out-dir", type=Path, default=None, help="where the CSV and PNGs go (var/eval/)"
    )
    add_update_docs(latency, "docs/eval/")
    latency.add_argument(
        "--plot-only",
        action="store_true",
        help="only redraw the plots from the latency.csv already in --out-dir",
    )
    latency.add_argument(
        "--work-dir", type=Path, default=None, help="keep the stacks' data and logs here"
    )
    latency.set_defaults(func=cmd_eval)

    crash = commands.add_parser(
        "crash-experiment",
        help="SIGKILL and restart order replicas while shoppers run; check nothing is noticed",
        description="Kills a replica per round (the leader in every third round) while "
        "shoppers run, restarts it, and finally compares every replica's orders. Replaces the "
        "crash-experiment section of the report file with the report.",
    )
    crash.add_argument("--rounds", type=at_least_one, default=6, help="rounds (default 6)")
    crash.add_argument(
        "--clients", type=at_least_one, default=3, help="concurrent shoppers (default 3)"
    )
    crash.add_argument("--p", type=probability, default=0.5, help="order probability (0.5)")
    crash.add_argument(
        "--down", type=float, default=2.0, help="seconds a killed replica stays down (2)"
    )
    crash.add_argument(
        "--settle",
        type=float,
        default=2.0,
        help="seconds of shopping before the first kill and after each restart (2)",
    )
    crash.add_argument("--seed", type=int, default=None, help="seed for victims and shoppers")
    crash.add_argument(
        "--replicas",
        type=at_least_one,
        default=None,
        help="order replicas (default: as many as ORDER_REPLICAS names)",
    )
    crash.add_argument(
        "--doc",
        type=Path,
        default=None,
        help="markdown file whose crash-experiment section is replaced (var/eval/crash.md)",
    )
    add_update_docs(crash, "the crash-experiment section of docs/evaluation.md")
    crash.add_argument(
        "--work-dir", type=Path, default=None, help="keep the stack's data and logs here"
    )
    crash.set_defaults(func=cmd_crash)
