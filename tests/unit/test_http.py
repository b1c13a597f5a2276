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
    client = ServiceClient(f"http://127.0.0.1:{port}", timeout=2)
    try:
        with pytest.raises(ServiceUnavailable) as caught:
            client.get("/orders/0")
        assert caught.value.maybe_delivered
    finally:
        client.close()
        server.close()
