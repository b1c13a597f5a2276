"""Run several shoppers at once (one thread and one keep-alive session each) and sum them up."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from app.client.shopper import Policy, RecordedOrder, RequestsTransport, Shopper
from app.client.stats import LatencyRecorder

# How many individual errors and mismatches a report lists before summarising the rest.
SHOWN_PROBLEMS = 10


@dataclass
class RunReport:
    clients: int
    seconds: float
    latency: LatencyRecorder
    iterations: int
    orders: list[RecordedOrder]  # every order placed (and then checked)
    rejected: int
    errors: list[str]
    mismatches: list[str]

    @property
    def ok(self) -> bool:
        return not self.errors and not self.mismatches

    def format(self) -> str:
        lines = [
            f"{self.clients} shopper(s), {self.iterations} iterations in {self.seconds:.1f} s",
            f"orders: {len(self.orders)} placed and checked, {self.rejected} refused for lack of "
            f"stock; mismatches: {len(self.mismatches)}; errors: {len(self.errors)}",
            f"{'request':<12} {'count':>7} {'mean ms':>9} {'p50 ms':>9} {'p99 ms':>9}",
        ]
        for row in self.latency.summaries():
            lines.append(
                f"{row.request_type:<12} {row.count:>7} {row.mean_ms:>9.2f} "
                f"{row.p50_ms:>9.2f} {row.p99_ms:>9.2f}"
            )
        for title, problems in (("mismatch", self.mismatches), ("error", self.errors)):
            lines += [f"{title}: {problem}" for problem in problems[:SHOWN_PROBLEMS]]
            if len(problems) > SHOWN_PROBLEMS:
                lines.append(f"... and {len(problems) - SHOWN_PROBLEMS} more of them")
        return "\n".join(lines)


def shopper_rng(seed: int | None, index: int) -> random.Random:
    """Each shopper its own generator: a seeded run repeats its decisions shopper by shopper."""
    return random.Random(None if seed is None else f"{seed}:{index}")


def run_shoppers(
    url: str,
    *,
    clients: int,
    p: float,
    keep_going: Callable[[Shopper], bool],
    seed: int | None = None,
    on_step: Callable[[int], None] | None = None,
) -> RunReport:
    """Run ``clients`` shoppers until ``keep_going`` says stop, then check all their orders.

    ``keep_going`` is asked before every step of a shopper (e.g. a number of iterations, a
    request budget, or an event set by whoever runs the experiment). ``on_step`` hears after
    every step how many queries and orders it sent (for a progress bar).
    """
    policy = Policy(p)

    def shop(index: int) -> Shopper:
        transport = RequestsTransport(url)
        shopper = Shopper(transport, policy, shopper_rng(seed, index))
        try:
            # Without the toys' names there is nothing to shop for; the failure is recorded.
            if shopper.names():
                while keep_going(shopper):
                    sent = shopper.requests
                    shopper.step()
                    if on_step is not None:
                        on_step(shopper.requests - sent)
            shopper.check_orders()
        finally:
            transport.close()
        return shopper

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=clients, thread_name_prefix="shopper") as pool:
        shoppers = list(pool.map(shop, range(clients)))
    return RunReport(
        clients=clients,
        seconds=time.monotonic() - started,
        latency=LatencyRecorder.merged(s.latency for s in shoppers),
        iterations=sum(s.iterations for s in shoppers),
        orders=[order for s in shoppers for order in s.orders],
        rejected=sum(s.rejected for s in shoppers),
        errors=[e for s in shoppers for e in s.errors],
        mismatches=[m for s in shoppers for m in s.mismatches],
    )
