"""A chaos run: start the store, let shoppers query and order while faults come and go,
heal everything, wait for the books to settle, then hand the history and the final state to
the checker."""

from __future__ import annotations

import random
import shutil
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import requests

from app.chaos.checker import Report, check, read_state, stock_problems
from app.chaos.disks import SmallDisks
from app.chaos.faults import DISK_FULL, KINDS, Fault, InFlight, Injector, Schedule
from app.chaos.history import History
from app.cluster import Cluster
from app.common.config import ConfigError, Settings, without_credentials
from app.common.http import succeeded
from app.frontend.routes import REPLAYED_HEADER, VERSION_HEADER
from app.observe import wait_converged, wait_undos_delivered
from app.orders.log import replica_dir

# A client waits this long beyond the front-end's ORDER_DEADLINE before it calls a request
# hung: the deadline bounds the retries, and one last call to a replica may still be running.
TIMEOUT_MARGIN = 5.0
ORDER_PROBABILITY = 0.5
LOOKUP_PROBABILITY = 0.2
REPLAY_PROBABILITY = 0.05
ORDER_ATTEMPTS = 3  # a shopper retries a 503 or a broken connection with the same key
RETRY_PAUSE = 0.2
CONVERGE_TIMEOUT = 60.0  # after the run, for every replica to hold the same committed log
# Then for the replicas' undo outboxes to drain and the catalog's books to balance against
# that log (reconciliation after a leader change runs on the leader's one-second beat).
BOOKS_TIMEOUT = 30.0


@dataclass(frozen=True)
class RunOptions:
    """What every fault run takes: how long, how many shoppers, how faults are dealt."""

    duration: float = 300.0
    shoppers: int = 8
    replicas: int | None = None  # None: those of ORDER_REPLICAS
    seed: int | None = None
    min_gap: float = 1.0
    max_gap: float = 4.0
    min_hold: float = 0.5
    max_hold: float = 3.0
    history: Path = Path("var/chaos/history.jsonl")
    kinds: tuple[str, ...] = KINDS  # the deck of fault kinds to deal from
    in_turn_first: bool = False  # deal the first round in the deck's order, then shuffled


@dataclass(frozen=True)
class ChaosOptions(RunOptions):
    data_dir: Path = Path("var/chaos/data")
    log_dir: Path = Path("var/chaos/logs")


class Shopper(threading.Thread):
    """Queries a random toy, orders it now and then with a fresh key, looks orders up and
    replays old keys; records every call."""

    def __init__(
        self,
        number: int,
        url: str,
        toys: list[str],
        history: History,
        timeout: float,
        seed: int,
        stop: threading.Event,
        in_flight: InFlight,
    ) -> None:
        super().__init__(name=f"shopper-{number}", daemon=True)
        self.number = number
        self.url = url
        self.toys = toys
        self.history = history
        self.timeout = timeout
        self.rng = random.Random(seed)
        self.stop = stop
        self.in_flight = in_flight
        self.session = requests.Session()
        self.acked: list[tuple[str, str, int]] = []  # key, toy, quantity

    def run(self) -> None:
        try:
            self.shop()
        except Exception as exc:
            # A shopper that dies quietly would leave a run that checks less than it claims.
            self.history.record("shopper-crash", shopper=self.number, error=repr(exc))
            raise

    def shop(self) -> None:
        while not self.stop.is_set():
            toy = self.rng.choice(self.toys)
            read = self.call("read", "GET", f"/products/{toy}", toy=toy)
            if self.rng.random() < REPLAY_PROBABILITY and self.acked:
                key, old_toy, quantity = self.rng.choice(self.acked)
                self.order(old_toy, quantity, key, replay=True)
            available = read.get("read_quantity") or 0
            if available > 0 and self.rng.random() < ORDER_PROBABILITY:
                quantity = self.rng.randint(1, min(3, available))
                number = self.order(toy, quantity, uuid.uuid4().hex, replay=False)
                if number is not None and self.rng.random() < LOOKUP_PROBABILITY:
                    self.call("lookup", "GET", f"/orders/{number}", number=number)

    def order(self, toy: str, quantity: int, key: str, replay: bool) -> int | None:
        body = {"name": toy, "quantity": quantity}
        for attempt in range(1, ORDER_ATTEMPTS + 1):
            with self.in_flight.order():
                record = self.call(
                    "order", "POST", "/orders", json=body, key=key, toy=toy, quantity=quantity,
                    attempt=attempt, replay=replay,
                )  # fmt: skip
            if succeeded(record["status"]):
                if not replay:
                    self.acked.append((key, toy, quantity))
                return record["number"]
            if record["status"] not in (None, 503) or self.stop.is_set():
                return None
            time.sleep(RETRY_PAUSE)
        return None

    def call(self, op: str, method: str, path: str, json: Any = None, key: str | None = None,
             **fields: Any) -> dict[str, Any]:  # fmt: skip
        headers = {"Idempotency-Key": key} if key else {}
        record: dict[str, Any] = {"shopper": self.number, "op": op, **fields}
        if key:
            record["key"] = key
        record["start"] = self.history.now()
        record["status"] = None
        try:
            reply = self.session.request(
                method, self.url + path, json=json, headers=headers, timeout=self.timeout
            )
        except requests.Timeout:
            record["error"] = "timeout"
        except requests.RequestException:
            # Refused, reset, or cut off mid-reply (ChunkedEncodingError): the connection broke.
            record["error"] = "connection"
        else:
            record["status"] = reply.status_code
            _read_reply(reply, op, record)
        record["end"] = self.history.now()
        self.history.record("request", **record)
        return record


def _read_reply(reply: requests.Response, op: str, record: dict[str, Any]) -> None:
    try:
        body = reply.json()
    except ValueError:
        record["error"] = "not json"
        return
    if not succeeded(reply.status_code):
        record["message"] = (body.get("error") or {}).get("message")
        return
    data = body.get("data") or {}
    version = reply.headers.get(VERSION_HEADER)
    if version is not None:
        record["version"] = int(version)
    if op == "read":
        record["read_quantity"] = data.get("quantity")
    elif op == "order":
        record["number"] = data.get("order_number")
        record["replayed"] = reply.headers.get(REPLAYED_HEADER) == "true"
    elif op == "lookup":
        record["reply"] = [data.get("number"), data.get("name"), data.get("quantity")]


def settle(cluster: Cluster, history: History) -> None:
    """Wait until a leader serves and every replica holds the same committed log, then until
    the catalog's stock adds up against that log. Each wait is bounded; one that runs out is
    noted in the history, and the checker judges whatever state is left.

    Asking the front-end for an order is what makes it elect a leader after the last fault.
    """
    deadline = time.monotonic() + CONVERGE_TIMEOUT
    while True:
        try:
            served = requests.get(f"{cluster.frontend_url}/orders/0", timeout=15).status_code
        except requests.RequestException:
            served = None
        remaining = deadline - time.monotonic()
        if served in (200, 404) and wait_converged(cluster, max(0.0, remaining)):
            break
        if remaining <= 0:
            history.record("note", t=history.now(), message="the replicas did not converge")
            break
        time.sleep(0.5)
    deadline = time.monotonic() + BOOKS_TIMEOUT
    wait_undos_delivered(cluster, BOOKS_TIMEOUT)  # the replicas' outboxes drain first
    while True:
        state = read_state(cluster.data_dir, cluster.replica_urls)
        if not state.unreadable and not stock_problems(state):
            return
        if time.monotonic() > deadline:
            history.record("note", t=history.now(), message="the stock did not add up in time")
            return
        time.sleep(0.5)


class Injection(Protocol):
    """What a run needs of the faults it deals: process and disk faults on one machine
    (``app.chaos.faults.Injector``) or cut links in the network lab
    (``app.netlab.partitions.PartitionInjector``)."""

    def plan(self, kind: str) -> Fault | None: ...

    def inject(self, fault: Fault) -> None: ...

    def hold(self, fault: Fault, seconds: float) -> None: ...

    def heal(self, fault: Fault) -> None: ...

    def heal_everything(self) -> None: ...


def new_seed(seed: int | None) -> int:
    return seed if seed is not None else random.SystemRandom().randrange(2**32)


def require_fault_tolerance(settings: Settings) -> None:
    if len(settings.replicas) <= settings.quorum_size:
        # Every replica fault would then be a loss of the quorum, and its 503s unexplained.
        raise ConfigError(
            f"a fault run needs order replicas that survive one failure; "
            f"{len(settings.replicas)} with a quorum of {settings.quorum_size} do not"
        )


def drive(
    cluster: Cluster,
    injection: Injection,
    options: RunOptions,
    *,
    history: History,
    in_flight: InFlight,
    rng: random.Random,
    seed: int,
    deck: Sequence[str],
    left_out: Mapping[str, str],
) -> Report:
    """The part every fault run shares, on a started ``cluster``: shoppers, faults dealt from
    ``deck`` until ``options.duration`` is up, then healing, settling and the checker."""
    settings = cluster.settings
    timeout = settings.order_deadline + TIMEOUT_MARGIN
    stop = threading.Event()
    toys = [
        p["name"]
        for p in requests.get(f"{cluster.frontend_url}/products", timeout=30).json()["data"]
    ]
    history.record(
        "meta", seed=seed, duration=options.duration, shoppers=options.shoppers,
        request_timeout=timeout, order_deadline=settings.order_deadline,
        replicas=sorted(cluster.replica_urls), data_dir=str(cluster.data_dir),
        log_dir=str(cluster.log_dir), redis_url=without_credentials(cluster.redis_url),
        cache_prefix=settings.cache_prefix, kinds=list(deck), left_out=dict(left_out),
    )  # fmt: skip
    shoppers = [
        Shopper(
            i, cluster.frontend_url, toys, history, timeout, rng.randrange(2**32), stop, in_flight
        )
        for i in range(options.shoppers)
    ]
    try:
        for shopper in shoppers:
            shopper.start()
        schedule = Schedule(
            rng, deck, (options.min_hold, options.max_hold), (options.min_gap, options.max_gap),
            in_turn_first=options.in_turn_first,
        )  # fmt: skip
        end = time.monotonic() + options.duration
        time.sleep(min(options.min_gap, options.duration))
        while time.monotonic() < end:
            fault = injection.plan(schedule.next_kind())
            if fault is None:  # this kind cannot be dealt now: wait a gap, then the next
                time.sleep(max(0.0, min(schedule.gap_time(), end - time.monotonic())))
                continue
            injection.inject(fault)
            injection.hold(fault, schedule.hold_time())
            injection.heal(fault)
            time.sleep(max(0.0, min(schedule.gap_time(), end - time.monotonic())))
    finally:
        stop.set()
    for shopper in shoppers:
        shopper.join(timeout + 5)
    history.record("note", t=history.now(), message="shoppers stopped; healing")
    injection.heal_everything()
    settle(cluster, history)
    history.close()
    return check(history.path, cluster.data_dir, redis_url=cluster.redis_url)


def run(options: ChaosOptions, env: Mapping[str, str] | None = None) -> Report:
    """Run one chaos round; ``env`` is the store's environment (default: this process's)."""
    seed = new_seed(options.seed)
    rng = random.Random(seed)
    for path in (options.data_dir, options.log_dir):
        shutil.rmtree(path, ignore_errors=True)
    cluster = Cluster.create(
        data_dir=options.data_dir,
        log_dir=options.log_dir,
        free_ports=True,
        env=env,
        replicas=options.replicas,
    )
    require_fault_tolerance(cluster.settings)
    history = History(options.history)
    in_flight = InFlight()
    with SmallDisks() as small_disks:
        try:
            deck, left_out = list(options.kinds), {}
            if DISK_FULL in deck:
                dirs = [replica_dir(cluster.data_dir, rid) for rid in sorted(cluster.replica_urls)]
                reason = small_disks.mount(dirs)
                if reason:
                    deck.remove(DISK_FULL)
                    left_out[DISK_FULL] = reason
                    history.record(
                        "note", t=history.now(), message=f"{DISK_FULL} left out: {reason}"
                    )
            if not deck:
                raise ConfigError(f"no fault kind left to deal: {left_out}")
            cluster.start()
            injector = Injector(cluster, history, rng, in_flight)
            return drive(
                cluster, injector, options, history=history, in_flight=in_flight, rng=rng,
                seed=seed, deck=deck, left_out=left_out,
            )  # fmt: skip
        finally:
            history.close()
            cluster.stop()
