"""The front-end's Gunicorn worker: Gunicorn's gevent worker with the store's JSON error
replies (``JsonErrors``).

Each connection is a greenlet, not a thread, so a client that sends its request slowly holds
a few kilobytes of memory rather than one of a handful of threads: thousands of slow or idle
connections cannot starve the others (docs/security.md, "Slow clients"). The worker
monkey-patches the standard library before it loads the app, so the front-end's threads (the
cache's listener, the order router's pool) are greenlets too and its sockets cooperative.
Gunicorn gives each request's line and headers at most its keep-alive time
(FRONTEND_HEADER_TIMEOUT) to arrive, counted from the connection's start or its previous
reply, then closes the connection.
"""

from __future__ import annotations

from gunicorn.util import close_graceful
from gunicorn.workers.ggevent import GeventWorker as GunicornGeventWorker

from app.common.workers import JsonErrors


class GeventWorker(JsonErrors, GunicornGeventWorker):
    """Gunicorn's gevent worker with JSON error replies, closing connections as the gthread
    worker does.

    A connection may close with part of its request still unread (the rest of an over-long
    line, or of a body refused with 413). Gunicorn's gevent worker would then close at once,
    which makes the kernel answer with a reset that can destroy the reply before the client
    reads it; this one half-closes first and reads what is left, within bounds
    (``close_graceful``).
    """

    def handle_error(self, req, client, addr, exc) -> None:
        super().handle_error(req, client, addr, exc)
        close_graceful(client)

    def handle_request(self, listener_name, req, sock, addr) -> bool:
        try:
            return super().handle_request(listener_name, req, sock, addr)
        except StopIteration:  # the reply is out and the connection is to close
            close_graceful(sock)
            raise
