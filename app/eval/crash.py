"""The crash experiment: shoppers keep shopping while order replicas are SIGKILLed and restarted.

Each round kills one replica (the leader in every third round, from the first; a random one in
the others, which may be the leader again), leaves it down for a while, restarts it on the
same data and lets it catch up. Afterwards every replica must hold the same orders, and the
shoppers, who check each order they placed, must have seen no error and no mismatch.
"""

from __future__ import annotations

import datetime
import random
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from app.client.run import RunReport, run_shoppers
from app.cluster import replica_name
from app.eval.stack import plan_stack
from app.observe import (
    current_leader,
    order_table_problems,
    replica_orders,
    wait_converged,
)

BEGIN = "<!-- crash-experiment:begin (written by `toystore crash-experiment`) -->"
END = "<!-- crash-experiment:end -->"


@dataclass(frozen=True)
class Round:
    number: int
    victim: int
    was_leader: bool
    leader_after: int | None  # the leader once the victim was back


@dataclass
class CrashReport:
    rounds: list[Round]
    clients: int
    p: float
    down_seconds: float
    shoppers: RunReport
    orders_per_replica: dict[int, int]
    identical: bool
    problems: list[str]  # how the replicas differ, if they do

    @property
    def noticed(self) -> bool:
        return not self.shoppers.ok

    @property
    def ok(self) -> bool:
        return not self.noticed and self.identical

    def markdown(self) -> str:
        when = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
        leader_rounds = sum(r.was_leader for r in self.rounds)
        lines = [
            BEGIN,
            f"Last run: {when}. {len(self.rounds)} rounds ({leader_rounds} killed the leader), "
            f"{self.clients} shoppers with p = {self.p}, each victim down for "
            f"{self.down_seconds:g} s.",
            "",
            "| round | killed (SIGKILL) | was leader | leader after restart |",
            "| --- | --- | --- | --- |",
        ]
        for r in self.rounds:
            lines.append(
                f"| {r.number} | replica {r.victim} | {'yes' if r.was_leader else 'no'} "
                f"| {r.leader_after if r.leader_after is not None else 'none'} |"
            )
        s = self.shoppers
        lines += [
            "",
            f"- Shoppers: {s.iterations} queries and {len(s.orders)} orders in {s.seconds:.0f} s; "
            f"every order read back: **{len(s.mismatches)} mismatches, {len(s.errors)} errors** "
            f"({'a client noticed' if self.noticed else 'no client noticed the crashes'}).",
            "- Replica databases after all were back and converged: "
            + ", ".join(f"replica {rid}: {n} orders" for rid, n in self.orders_per_replica.items())
            + f"; **{'identical' if self.identical else 'NOT identical'}**.",
        ]
        lines += [f"- {problem}" for problem in self.problems]
        lines += [f"- client: {problem}" for problem in (s.mismatches + s.errors)[:10]]
        lines.append(END)
        return "\n".join(lines)


def choose_victim(
    rng: random.Random, round_index: int, leader: int | None, replica_ids: Sequence[int]
) -> int:
    """The leader in every third round (from the first), else any replica at random."""
    if round_index % 3 == 0 and leader is not None:
        return leader
    return rng.choice(list(replica_ids))


def run_crash_experiment(
    work_dir: Path,
    *,
    rounds: int = 6,
    clients: int = 3,
    p: float = 0.5,
    down_seconds: float = 2.0,
    settle_seconds: float = 2.0,
    seed: int | None = None,
    env: Mapping[str, str] | None = None,
    replicas: int | None = None,
) -> CrashReport:
    rng = random.Random(seed)
    done: list[Round] = []
    stop = threading.Event()
    with (
        plan_stack(work_dir, env=env, replicas=replicas) as cluster,
        ThreadPoolExecutor(1) as background,
    ):
        cluster.start()
        shopping = background.submit(
            run_shoppers,
            cluster.frontend_url,
            clients=clients,
            p=p,
            seed=seed,
            keep_going=lambda shopper: not stop.is_set(),
        )
        try:
            time.sleep(settle_seconds)
            for index in range(rounds):
                leader = current_leader(cluster)
                victim = choose_victim(rng, index, leader, sorted(cluster.replica_urls))
                cluster.kill(replica_name(victim))
                time.sleep(down_seconds)
                cluster.restart(replica_name(victim))
                # Let the restarted replica catch up before the next victim is chosen.
                time.sleep(settle_seconds)
                done.append(Round(index + 1, victim, victim == leader, current_leader(cluster)))
        finally:
            stop.set()
        shoppers = shopping.result()
        converged = wait_converged(cluster)
        orders = replica_orders(cluster)
    problems = order_table_problems(orders)
    if not converged:
        problems.insert(0, "the replicas did not converge within 30 s")
    return CrashReport(
        rounds=done,
        clients=clients,
        p=p,
        down_seconds=down_seconds,
        shoppers=shoppers,
        orders_per_replica={rid: len(rows) for rid, rows in orders.items()},
        identical=not problems,
        problems=problems,
    )


def write_section(doc: Path, section: str) -> None:
    """Replace the delimited crash-experiment section of ``doc``, or append one."""
    text = doc.read_text(encoding="utf-8") if doc.exists() else ""
    start, end = text.find(BEGIN), text.find(END)
    if start != -1 and end > start:
        text = text[:start] + section + text[end + len(END) :]
    else:
        text = text.rstrip("\n") + ("\n\n" if text else "") + section + "\n"
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(text, encoding="utf-8")
