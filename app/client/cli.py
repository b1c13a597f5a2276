"""``toystore client``: shop against a running store and report latencies and problems."""

from __future__ import annotations

import argparse
import sys

from tqdm import tqdm

from app.client.run import run_shoppers

DEFAULT_URL = "http://127.0.0.1:8000"


def probability(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {value}")
    return value


def at_least_one(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def cmd_client(args: argparse.Namespace) -> int:
    """Exit 0 when every reply was expected and every order read back matched; else 1."""
    # tqdm shows the bar only when stderr is a terminal (disable=None), so logs stay clean.
    with tqdm(
        total=args.clients * args.iterations, unit="it", file=sys.stderr, disable=None
    ) as bar:
        report = run_shoppers(
            args.url,
            clients=args.clients,
            p=args.p,
            seed=args.seed,
            keep_going=lambda shopper: shopper.iterations < args.iterations,
            on_step=lambda sent: bar.update(1),
        )
    print(f"p={args.p} against {args.url}")
    print(report.format())
    return 0 if report.ok else 1


def register(commands: argparse._SubParsersAction) -> None:
    client = commands.add_parser(
        "client",
        help="shop like a customer: query random toys, order some, check the orders",
        description="Each shopper queries a random toy and, if it is in stock, orders it with "
        "probability P; at the end it reads every order back and checks it. Exits 1 on a "
        "mismatch or an unexpected error (an order refused for lack of stock is expected).",
    )
    client.add_argument("--url", default=DEFAULT_URL, help=f"front-end URL (default {DEFAULT_URL})")
    client.add_argument(
        "--p", type=probability, default=0.5, help="probability of ordering (default 0.5)"
    )
    client.add_argument(
        "--iterations", type=at_least_one, default=100, help="queries per shopper (default 100)"
    )
    client.add_argument(
        "--clients", type=at_least_one, default=1, help="concurrent shoppers (default 1)"
    )
    client.add_argument("--seed", type=int, default=None, help="seed for repeatable choices")
    client.set_defaults(func=cmd_client)
