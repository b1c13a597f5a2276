"""ServiceClient against a server that dies half-way through its reply."""

from __future__ import annotations

import socket
import threading

import pytest

from app.common.http import ServiceClient, ServiceUnavailable


def _cut_off_server() -> tuple[socket.socket, int]:
    """Answers one request with headers promising a body, then closes without sending it:
    what a replica killed mid-reply looks like to its caller."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 56\r\n\r\n"
            )

    threading.Thread(target=serve, daemon=True).start()
    return server, server.getsockname()[1]


def test_reply_cut_off_is_unavailable_not_an_exception():
    # Found by a chaos run: a GET /orders/<n> got a 500 because the leader died mid-reply and
    # requests raised ChunkedEncodingError, which ServiceClient did not turn into
    # ServiceUnavailable, so the front-end's failover never ran.
    server, port = _cut_off_server()
    client = ServiceClient(f"http://127.0.0.1:{port}", timeout=2, token="t")
    try:
        with pytest.raises(ServiceUnavailable) as caught:
            client.get("/orders/0")
        assert caught.value.maybe_delivered
    finally:
        client.close()
        server.close()


def _drops_first_connection_server() -> tuple[socket.socket, int, list[bytes]]:
    """Closes its first connection after reading the request, without a byte of reply (a
    kept-alive connection the server timed out just as it was reused), then answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(2)
    requests_seen: list[bytes] = []

    def serve() -> None:
        for answer in (False, True):
            conn, _ = server.accept()
            with conn:
                requests_seen.append(conn.recv(65536))
                if answer:
                    body = b'{"data": {"ok": true}}'
                    conn.sendall(
                        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                        b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
                    )

    threading.Thread(target=serve, daemon=True).start()
    return server, server.getsockname()[1], requests_seen


def test_get_is_resent_once_when_the_connection_drops_before_a_reply():
    # Found by a chaos run: a product read got a 503 with no fault anywhere, because the
    # catalog's Gunicorn closed an idle kept-alive connection just as the front-end reused it.
    server, port, seen = _drops_first_connection_server()
    client = ServiceClient(f"http://127.0.0.1:{port}", timeout=2, token="t")
    try:
        assert client.get("/products/Tux").data == {"ok": True}
        assert len(seen) == 2
    finally:
        client.close()
        server.close()


def test_post_is_not_resent_when_the_connection_drops():
    server, port, seen = _drops_first_connection_server()
    client = ServiceClient(f"http://127.0.0.1:{port}", timeout=2, token="t")
    try:
        with pytest.raises(ServiceUnavailable) as caught:
            client.post("/purchases", json={"key": "k"})
        assert caught.value.maybe_delivered
        assert len(seen) == 1
    finally:
        client.close()
        server.close()


def test_every_call_carries_the_internal_credential():
    server, port, seen = _drops_first_connection_server()
    client = ServiceClient(f"http://127.0.0.1:{port}", timeout=2, token="s3cret")
    try:
        client.get("/ledger")
        assert all(b"\r\nAuthorization: Bearer s3cret\r\n" in request for request in seen)
    finally:
        client.close()
        server.close()
