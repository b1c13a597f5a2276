"""Locust load test: the same shopper as ``toystore client``, as a Locust user.

Web UI (against a running store)::

    make locust        # locust -f locustfile.py --host http://127.0.0.1:8000, UI on :8089

Headless, with CSV stats::

    locust -f locustfile.py --headless -u 5 -r 5 -t 30s --host http://127.0.0.1:8000 \\
        --p 0.4 --csv var/locust

The order probability comes from ``--p`` (also a field in the web UI), else from the
TOYSTORE_P environment variable, else 0.5. Between visits a shopper thinks for a random time of
up to ``--think`` seconds (default 2; 0 for a closed loop with no pause). The web UI listens on
127.0.0.1 (locust.conf beside this file) unless ``--web-host`` says otherwise. Requests are
grouped as ``query``, ``order`` and ``order-check``; an order refused for lack of stock counts
as a success, an order read back that differs from what was ordered as a failure named
``order-mismatch``.
"""

from __future__ import annotations

import os
import random
from typing import Any

from locust import FastHttpUser, events, task
from locust.argument_parser import LocustArgumentParser

from app.client.shopper import Policy, Request, Shopper, TransportError, expected_status

# A user reads back its new orders every this many visits, so checks run throughout a test.
CHECK_EVERY = 10


@events.init_command_line_parser.add_listener
def add_options(parser: LocustArgumentParser) -> None:
    parser.add_argument(
        "--p",
        type=float,
        default=float(os.environ.get("TOYSTORE_P", "0.5")),
        include_in_web_ui=True,
        help="probability that a shopper orders a toy it found in stock (env TOYSTORE_P)",
    )
    parser.add_argument(
        "--think",
        type=float,
        default=2.0,
        include_in_web_ui=True,
        help="longest pause between a shopper's visits, in seconds (0: none)",
    )


def think_time(user: ToyShopper) -> float:
    """Like a person between page views: a quarter to all of --think seconds."""
    longest = max(0.0, float(user.environment.parsed_options.think))
    return random.uniform(longest / 4, longest)


class ToyShopper(FastHttpUser):
    host = "http://127.0.0.1:8000"
    wait_time = think_time

    def on_start(self) -> None:
        policy = Policy(float(self.environment.parsed_options.p))
        # Locust measures the latencies itself; the shopper keeps only its orders.
        self.shopper = Shopper(self.send, policy, random.Random(), record_latency=False)

    @task
    def visit(self) -> None:
        self.shopper.step()
        if self.shopper.iterations % CHECK_EVERY == 0:
            self.check_orders()

    def on_stop(self) -> None:
        self.check_orders()

    def check_orders(self) -> None:
        seen = len(self.shopper.mismatches)
        self.shopper.check_orders()
        for mismatch in self.shopper.mismatches[seen:]:
            self.environment.events.request.fire(
                request_type="CHECK",
                name="order-mismatch",
                response_time=0,
                response_length=0,
                exception=AssertionError(mismatch),
                context={},
            )

    def send(self, request: Request) -> tuple[int, Any]:
        """The shopper's transport: Locust's client, one stats row per request type."""
        with self.client.request(
            request.method,
            request.path,
            name=request.request_type,
            json=request.json,
            headers=request.headers,
            catch_response=True,
        ) as response:
            status = response.status_code
            try:
                body = response.json()
            except (ValueError, TypeError):  # no reply at all, or not JSON
                body = None
            if body is None:
                response.failure(f"no JSON reply (status {status})")
            elif expected_status(request.request_type, status):
                response.success()
            else:
                response.failure(f"unexpected status {status}: {body}")
        if body is None:
            raise TransportError(f"{request.method} {request.path}: no JSON reply ({status})")
        return status, body
