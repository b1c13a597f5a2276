"""``toystore slowclients``: can connections that trickle their headers starve normal requests?

Opens N connections to the front-end that each send a request head one byte a second and never
finish it (a connection the server closes is opened again, as an attacker would), and
meanwhile times normal requests, each on a fresh connection as a new visitor's: GET
/products/Tux and POST /orders in turn. A request that takes longer than ``timeout`` counts as
failed. Everything runs in one asyncio loop in one thread, so the measuring costs the 2-core
machine little of the CPU the store needs.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import sys
import time
from collections import Counter
from dataclasses import dataclass
from urllib.parse import urlsplit

import requests

from app.bench import scenarios
from app.bench.loadgen import Connection, LoadResult

# A request head that is never finished: the value of its last header grows by one byte a
# second, far below any of Gunicorn's size limits for the length of a measurement.
TRICKLE_START = b"GET /products/Tux HTTP/1.1\r\nHost: slow-client\r\nX-Trickle: "
TRICKLE_INTERVAL = 1.0
PROBE_TOY = "Tux"


@dataclass
class SlowClientReport:
    trickling: int
    reads: LoadResult
    orders: LoadResult
    trickles_closed: int = 0  # trickling connections the server closed (each opened again)
    trickles_open: int = 0  # open when the probing ended

    @property
    def latencies(self) -> list[float]:
        return self.reads.latencies + self.orders.latencies

    @property
    def failures(self) -> int:
        """Probes that timed out, failed to connect or got no 2xx."""
        return sum(
            r.errors + sum(n for status, n in r.statuses.items() if status >= 300)
            for r in (self.reads, self.orders)
        )

    def summary(self) -> dict:
        return {
            "trickling": self.trickling,
            "reads": self.reads.summary(),
            "orders": self.orders.summary(),
            "trickles_closed": self.trickles_closed,
            "trickles_open": self.trickles_open,
        }


async def _trickle(host: str, port: int, stop: asyncio.Event, counts: Counter) -> None:
    """One slow client: the head's first bytes at once, then one byte a second, until
    ``stop``. ``counts`` keeps how many are open and how many the server closed."""
    while not stop.is_set():
        try:
            reader, writer = await asyncio.open_connection(host, port)
        except OSError:
            await asyncio.sleep(TRICKLE_INTERVAL)
            continue
        counts["open"] += 1
        try:
            writer.write(TRICKLE_START)
            while not stop.is_set():
                await writer.drain()
                try:
                    await asyncio.wait_for(reader.read(1024), TRICKLE_INTERVAL)
                except TimeoutError:
                    writer.write(b"a")
                    continue
                break  # closed or answered: the server gave up on this head
        except OSError:
            pass
        finally:
            counts["open"] -= 1
            writer.close()
        if not stop.is_set():
            counts["closed"] += 1


async def _probe(
    host: str, port: int, method: str, path: str, body: object, timeout: float, into: LoadResult
) -> None:
    """One normal request on a fresh connection, timed from the connect to the last byte."""
    conn = Connection(host, port)
    started = time.perf_counter()
    try:
        status, _ = await asyncio.wait_for(
            conn.request(method, path, body, {"Connection": "close"}), timeout
        )
    except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError):
        into.errors += 1
        return
    finally:
        conn.close()
    into.statuses[status] = into.statuses.get(status, 0) + 1
    if status < 300:
        into.latencies.append(time.perf_counter() - started)
        into.started.append(started)


async def _measure(
    url: str, trickling: int, seconds: float, probes: int | None, timeout: float, toys: list[str]
) -> SlowClientReport:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    report = SlowClientReport(trickling, LoadResult(1, seconds), LoadResult(1, seconds))
    stop = asyncio.Event()
    counts: Counter = Counter()
    trickles = [asyncio.create_task(_trickle(host, port, stop, counts)) for _ in range(trickling)]
    # Every slow client has sent its first bytes (and so holds whatever the server gives a
    # request in progress) before the first probe.
    await asyncio.sleep(2 * TRICKLE_INTERVAL)
    order_toys = itertools.cycle(toys)
    end = time.perf_counter() + seconds
    sent = 0
    while time.perf_counter() < end and (probes is None or sent < probes):
        if sent % 2 == 0:
            await _probe(host, port, "GET", f"/products/{PROBE_TOY}", None, timeout, report.reads)
        else:
            order = {"name": next(order_toys), "quantity": 1}
            await _probe(host, port, "POST", "/orders", order, timeout, report.orders)
        sent += 1
    report.trickles_open, report.trickles_closed = counts["open"], counts["closed"]
    stop.set()
    await asyncio.gather(*trickles)
    return report


def measure(
    url: str,
    trickling: int,
    seconds: float,
    probes: int | None = None,
    timeout: float = 5.0,
    toys: list[str] | None = None,
) -> SlowClientReport:
    """Time normal requests to the front-end at ``url`` while ``trickling`` slow clients are
    connected: for ``seconds``, or until ``probes`` requests were sent. Orders buy one of each
    of ``toys`` in turn (default: only the probed toy)."""
    return asyncio.run(_measure(url, trickling, seconds, probes, timeout, toys or [PROBE_TOY]))


def _line(report: SlowClientReport) -> str:
    def part(name: str, r: LoadResult) -> str:
        s = r.summary()
        failed = s["errors"] + s["non_2xx"]
        return (
            f"{name}: {s['requests']} ok, p50 {s['p50_ms']} ms, p99 {s['p99_ms']} ms, "
            f"max {s['max_ms']} ms, {failed} failed"
        )

    return (
        f"{report.trickling:>4} trickling | {part('GET', report.reads)} | "
        f"{part('POST', report.orders)} | trickling connections open at the end "
        f"{report.trickles_open}, closed by the server {report.trickles_closed}"
    )


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "slowclients",
        help="time normal requests while many connections trickle their headers",
        description="Starts a private store on free ports (with this environment's settings, "
        "e.g. FRONTEND_WORKER_CLASS=gthread), opens N connections that each send a request "
        "head one byte a second, and times GET /products/Tux and POST /orders from fresh "
        "connections meanwhile: p50, p99, max and failures (over --timeout counts as failed).",
    )
    parser.add_argument(
        "--trickling",
        type=int,
        nargs="+",
        default=[0, 64, 256],
        help="numbers of slow connections, one measurement each (default: 0 64 256)",
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="probing time per point")
    parser.add_argument("--timeout", type=float, default=5.0, help="a slower probe has failed")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    results = []
    # Sold-out toys come back every second, so that orders are not refused for lack of stock.
    with scenarios.store(scenarios.scratch_dir(), "slowclients", RESTOCK_INTERVAL="1") as cluster:
        url = cluster.frontend_url
        toys = [toy["name"] for toy in requests.get(f"{url}/products").json()["data"]]
        for count in args.trickling:
            report = measure(url, count, args.seconds, timeout=args.timeout, toys=toys)
            results.append(report.summary())
            if not args.json:
                print(_line(report), flush=True)
            # The server's side of the slow connections is gone before the next point.
            time.sleep(TRICKLE_INTERVAL)
    if args.json:
        json.dump(results, sys.stdout, indent=2)
        print()
    return 0
