"""The shopper: query a random toy, order it with probability p, check every order at the end.

Three layers, so the command-line client, the Locust user and the experiments share one
behaviour:

- ``Policy`` and ``order_mismatch``: the pure decisions (which toy, whether and how many to
  order, whether an order read back matches), deterministic for a given ``random.Random``;
- ``Shopper``: the loop over those decisions, talking through a ``Transport``;
- ``RequestsTransport``: a keep-alive ``requests.Session`` to the front-end (Locust brings its
  own transport, see locustfile.py).
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import requests

from app.client.stats import ORDER, ORDER_CHECK, QUERY, LatencyRecorder
from app.common.http import succeeded

# The one listing request a shopper makes to learn the toys' names; not a timed request type.
LIST = "list"


@dataclass(frozen=True)
class Policy:
    """A shopper's decisions, apart from any I/O."""

    p: float
    max_quantity: int = 3

    def __post_init__(self) -> None:
        if not 0.0 <= self.p <= 1.0:
            raise ValueError(f"p must be between 0 and 1, got {self.p}")
        if self.max_quantity < 1:
            raise ValueError(f"max_quantity must be at least 1, got {self.max_quantity}")

    def pick_toy(self, rng: random.Random, names: Sequence[str]) -> str:
        return rng.choice(names)

    def order_quantity(self, rng: random.Random, in_stock: int) -> int:
        """How many to order after seeing ``in_stock``; 0 means do not order."""
        if in_stock <= 0 or rng.random() >= self.p:
            return 0
        # Never ask for more than was just in stock: a refusal then only comes from a race
        # with other shoppers, as in a real shop.
        return rng.randint(1, min(self.max_quantity, in_stock))


@dataclass(frozen=True)
class RecordedOrder:
    number: int
    name: str
    quantity: int


def order_mismatch(recorded: RecordedOrder, data: Any) -> str | None:
    """Why the store's reply to ``GET /orders/<n>`` differs from what was ordered, or None."""
    expected = {"number": recorded.number, "name": recorded.name, "quantity": recorded.quantity}
    if not isinstance(data, dict) or {key: data.get(key) for key in expected} != expected:
        return f"order {recorded.number}: ordered {expected}, store has {data}"
    return None


def expected_status(request_type: str, status: int) -> bool:
    """Whether a reply is part of normal shopping rather than an error.

    The shopper only sends valid orders, so a 400 to an order can only mean the stock ran out
    between the query and the order: expected under concurrency, not an error.
    """
    return succeeded(status) or (request_type == ORDER and status == 400)


class TransportError(Exception):
    """No usable reply: the connection failed, timed out, or the body was not JSON."""


@dataclass(frozen=True)
class Request:
    request_type: str  # QUERY, ORDER, ORDER_CHECK or LIST: how the request is counted
    method: str
    path: str
    json: Any = None
    headers: dict[str, str] | None = None


# Sends one request and returns its status and decoded JSON body, or raises TransportError.
Transport = Callable[[Request], tuple[int, Any]]


class RequestsTransport:
    """One keep-alive session to the front-end: a shopper reuses its connection throughout."""

    def __init__(self, base_url: str, timeout: float = 15.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()

    def __call__(self, request: Request) -> tuple[int, Any]:
        try:
            response = self.session.request(
                request.method,
                self.base_url + request.path,
                json=request.json,
                headers=request.headers,
                timeout=self.timeout,
            )
            return response.status_code, response.json()
        except requests.RequestException as exc:  # includes a body that is not JSON
            raise TransportError(str(exc)) from exc

    def close(self) -> None:
        self.session.close()


def data_of(body: Any) -> Any:
    return body.get("data") if isinstance(body, dict) else None


class Shopper:
    """One shopper's state: its orders, latencies, errors and mismatches.

    ``step`` is one visit (query, maybe order); ``check_orders`` reads back every order not
    checked yet. A shopper is used by one thread at a time.
    """

    def __init__(
        self,
        transport: Transport,
        policy: Policy,
        rng: random.Random,
        record_latency: bool = True,
    ) -> None:
        self.transport = transport
        self.policy = policy
        self.rng = rng
        self.record_latency = record_latency
        self.latency = LatencyRecorder()
        self.orders: list[RecordedOrder] = []
        self.errors: list[str] = []
        self.mismatches: list[str] = []
        self.rejected = 0  # orders refused for lack of stock
        self.iterations = 0
        self.requests = 0  # queries and orders sent (order checks not included)
        self._checked = 0
        self._names: list[str] = []

    def _call(self, request: Request) -> tuple[int, Any] | None:
        """Send and time one request; on no reply or an unexpected status record an error."""
        what = f"{request.request_type} {request.method} {request.path}"
        started = time.perf_counter()
        try:
            status, body = self.transport(request)
        except TransportError as exc:
            self.errors.append(f"{what}: {exc}")
            return None
        if self.record_latency and request.request_type != LIST:
            self.latency.add(request.request_type, time.perf_counter() - started)
        if not expected_status(request.request_type, status):
            self.errors.append(f"{what}: {status} {body}")
            return None
        return status, body

    def names(self) -> list[str]:
        """The toys' names, read once from ``GET /products``; empty if that failed."""
        if not self._names:
            reply = self._call(Request(LIST, "GET", "/products"))
            toys = data_of(reply[1]) if reply else None
            if isinstance(toys, list):
                self._names = [toy["name"] for toy in toys if isinstance(toy, dict)]
        return self._names

    def step(self) -> None:
        """Query a random toy; if it is in stock, order it with probability p."""
        names = self.names()
        if not names:
            return
        self.iterations += 1
        name = self.policy.pick_toy(self.rng, names)
        self.requests += 1
        reply = self._call(Request(QUERY, "GET", f"/products/{quote(name, safe='')}"))
        toy = data_of(reply[1]) if reply else None
        if not isinstance(toy, dict):
            return
        quantity = self.policy.order_quantity(self.rng, int(toy.get("quantity", 0)))
        if quantity:
            self.order(name, quantity)

    def order(self, name: str, quantity: int) -> None:
        # A key of our own per order: were the request retried, the store would not buy twice.
        headers = {"Idempotency-Key": uuid.uuid4().hex}
        self.requests += 1
        wanted = {"name": name, "quantity": quantity}
        reply = self._call(Request(ORDER, "POST", "/orders", json=wanted, headers=headers))
        if reply is None:
            return
        status, body = reply
        if not succeeded(status):
            self.rejected += 1
            return
        data = data_of(body)
        number = data.get("order_number") if isinstance(data, dict) else None
        if isinstance(number, int):
            self.orders.append(RecordedOrder(number, name, quantity))
        else:
            self.errors.append(f"order {name} x{quantity}: reply without an order number: {body}")

    def check_orders(self) -> None:
        """Read back every order not checked yet and compare it with what was ordered."""
        for recorded in self.orders[self._checked :]:
            reply = self._call(Request(ORDER_CHECK, "GET", f"/orders/{recorded.number}"))
            if reply is not None:
                mismatch = order_mismatch(recorded, data_of(reply[1]))
                if mismatch:
                    self.mismatches.append(mismatch)
        self._checked = len(self.orders)
