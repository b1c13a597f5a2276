"""The public edge holds up: slow clients starve no one, and what Gunicorn refuses by itself
(414, 431) or the body bound refuses (413, chunked bodies included) comes in the JSON error
shape and changes nothing. Real front-end, real sockets."""

from __future__ import annotations

import contextlib
import socket
import time

import orjson
import pytest
import requests

from app.bench import slowclients
from app.cluster import Cluster
from app.common.config import Settings
from tests.support import NO_RESTOCK, stock

HEADER_TIMEOUT = 4  # FRONTEND_HEADER_TIMEOUT of this module's store
MAX_BODY = Settings().max_body_bytes
ORDER = b'{"name": "Tux", "quantity": 1}'


@pytest.fixture(scope="module")
def edge(module_cluster_factory) -> Cluster:
    return module_cluster_factory(
        env={**NO_RESTOCK, "FRONTEND_HEADER_TIMEOUT": str(HEADER_TIMEOUT)}
    )


def exchange(url: str, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send raw bytes, read the reply until the server closes: status, headers, body."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request)
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), headers, body


def assert_error_shape(reply: tuple[int, dict[str, str], bytes], status: int) -> None:
    code, headers, body = reply
    assert code == status, body
    assert headers["content-type"] == "application/json"
    error = orjson.loads(body)["error"]
    assert set(orjson.loads(body)) == {"error"} and set(error) == {"code", "message"}
    assert error["code"] == status
    assert isinstance(error["message"], str) and error["message"].endswith(".")


def order_head(extra: str) -> bytes:
    return (
        "POST /orders HTTP/1.1\r\nHost: edge\r\nContent-Type: application/json\r\n"
        f"Connection: close\r\n{extra}\r\n"
    ).encode()


def chunked(body: bytes, size: int) -> bytes:
    pieces = [body[i : i + size] for i in range(0, len(body), size)]
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"


def test_trickling_connections_do_not_starve_normal_requests(edge: Cluster) -> None:
    report = slowclients.measure(edge.frontend_url, trickling=64, seconds=10, probes=20, timeout=2)
    assert report.failures == 0, report.summary()
    assert len(report.latencies) == 20
    assert max(report.latencies) < 1.0, report.summary()


def test_a_slow_or_idle_connection_is_closed_after_the_header_timeout(edge: Cluster) -> None:
    host, port = edge.frontend_url.removeprefix("http://").split(":")
    idle = socket.create_connection((host, int(port)))
    slow = socket.create_connection((host, int(port)))
    slow.sendall(b"GET /products/Tux HTTP/1.1\r\nHost: edge\r\nX-Slow: ")
    started = time.monotonic()
    for sock in (idle, slow):
        sock.settimeout(0.5)
    open_socks = {idle, slow}
    closed_after = {}
    while open_socks and time.monotonic() - started < HEADER_TIMEOUT + 5:
        if slow in open_socks:
            with contextlib.suppress(OSError):
                slow.sendall(b"a")
        for sock in list(open_socks):
            try:
                data = sock.recv(1024)
            except TimeoutError:
                continue
            except ConnectionResetError:
                data = b""
            assert data == b"", f"an unfinished request was answered: {data[:100]!r}"
            closed_after[sock] = time.monotonic() - started
            open_socks.discard(sock)
    idle.close()
    slow.close()
    assert set(closed_after) == {idle, slow}, "a connection outlived the header timeout"
    assert all(HEADER_TIMEOUT - 1 < t < HEADER_TIMEOUT + 3 for t in closed_after.values())


@pytest.mark.parametrize("service", ["frontend", "catalog"])
def test_a_request_line_too_long_gets_414(edge: Cluster, service: str) -> None:
    line = b"GET /products/" + b"a" * 5000 + b" HTTP/1.1\r\nHost: edge\r\n\r\n"
    assert_error_shape(exchange(edge.url(service), line), 414)


@pytest.mark.parametrize(
    "headers",
    ["X-Big: " + "a" * 9000 + "\r\n", "".join(f"X-Many-{i}: a\r\n" for i in range(150))],
    ids=["too-large", "too-many"],
)
def test_headers_too_large_or_too_many_get_431(edge: Cluster, headers: str) -> None:
    before = stock(edge.frontend_url, "Tux")
    reply = exchange(edge.frontend_url, order_head(headers + f"Content-Length: {len(ORDER)}\r\n"))
    assert_error_shape(reply, 431)
    assert stock(edge.frontend_url, "Tux") == before


def test_a_body_over_the_bound_gets_413(edge: Cluster) -> None:
    body = ORDER + b" " * MAX_BODY  # still a valid order, were it cut at the bound
    before = stock(edge.frontend_url, "Tux")
    reply = exchange(edge.frontend_url, order_head(f"Content-Length: {len(body)}\r\n") + body)
    assert_error_shape(reply, 413)
    assert stock(edge.frontend_url, "Tux") == before


# Up to 64 KiB of a refused body are read and dropped after the reply (Gunicorn's graceful
# close), so that the client sees the 413 rather than a reset.
@pytest.mark.parametrize("extra", [1, 50_000])
def test_a_chunked_body_over_the_bound_gets_413_not_its_truncated_start(
    edge: Cluster, extra: int
) -> None:
    # Cut at the bound, this would be a valid order: it must be refused whole.
    body = ORDER + b" " * (MAX_BODY - len(ORDER) + extra)
    before = stock(edge.frontend_url, "Tux")
    reply = exchange(
        edge.frontend_url, order_head("Transfer-Encoding: chunked\r\n") + chunked(body, 1000)
    )
    assert_error_shape(reply, 413)
    assert stock(edge.frontend_url, "Tux") == before


def test_a_chunked_body_within_the_bound_is_read_whole(edge: Cluster) -> None:
    # Exactly at the bound, in small chunks, with the order's fields at the far end.
    body = b"{" + b" " * (MAX_BODY - len(ORDER)) + ORDER[1:]
    assert len(body) == MAX_BODY
    before = stock(edge.frontend_url, "Tux")
    status, _, reply = exchange(
        edge.frontend_url, order_head("Transfer-Encoding: chunked\r\n") + chunked(body, 97)
    )
    assert status == 201, reply
    number = orjson.loads(reply)["data"]["order_number"]
    assert stock(edge.frontend_url, "Tux") == before - 1
    placed = requests.get(f"{edge.frontend_url}/orders/{number}", timeout=5).json()["data"]
    assert placed == {"number": number, "name": "Tux", "quantity": 1}
