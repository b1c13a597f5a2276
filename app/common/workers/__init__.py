"""The store's Gunicorn worker classes: Gunicorn's own, but what Gunicorn answers by itself,
before any app sees the request (a request line too long: 414, headers too large or too many:
431, a request it cannot parse: 400), comes in the store's JSON error shape instead of an HTML
page.

``gthread.ThreadWorker`` runs the internal services (and the front-end with
FRONTEND_WORKER_CLASS=gthread), ``gevent.GeventWorker`` the front-end by default. Each is in a
module of its own, and this one imports neither: Gunicorn's master loads the worker class
before the gevent worker monkey-patches the standard library, and a module imported before
that (such as ``concurrent.futures``, which the gthread worker needs) would keep a lock that
blocks the whole process instead of one greenlet.
"""

from __future__ import annotations

import contextlib
import logging
from http import HTTPStatus

import orjson
from gunicorn.http.errors import (
    ConfigurationProblem,
    ExpectationFailed,
    InvalidResponseHeader,
    InvalidResponseHeaderName,
    LimitRequestHeaders,
    LimitRequestLine,
    ParseException,
    UnsupportedTransferCoding,
)
from gunicorn.util import write_nonblock

from app.common.error_shape import error_document
from app.common.logs import log_event

log = logging.getLogger(__name__)

# The first match wins: a bad header of our own reply is our fault, not the client's.
_STATUSES: tuple[tuple[type[Exception] | tuple[type[Exception], ...], int], ...] = (
    ((InvalidResponseHeader, InvalidResponseHeaderName, ConfigurationProblem), 500),
    (LimitRequestLine, 414),
    (LimitRequestHeaders, 431),
    (ExpectationFailed, 417),
    (UnsupportedTransferCoding, 501),
    (ParseException, 400),
)


def error_status(exc: BaseException) -> int:
    """The HTTP status of a failure Gunicorn met while reading or answering a request."""
    for kinds, status in _STATUSES:
        if isinstance(exc, kinds):
            return status
    return 500


def error_reply(status: int) -> bytes:
    """A whole HTTP response in the error shape, after which the connection closes."""
    body = orjson.dumps(error_document(status))
    head = (
        f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n"
        "Connection: close\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode("latin-1") + body


class JsonErrors:
    """Mixin for a Gunicorn worker: its own error replies in the JSON error shape."""

    def handle_error(self, req, client, addr, exc) -> None:  # Gunicorn's signature
        status = error_status(exc)
        peer = addr[0] if addr else ""
        if status >= 500:
            log.error(
                "request failed in the server", exc_info=exc, extra={"fields": {"client": peer}}
            )
        else:
            error = str(exc)[:200]
            log_event(
                log, "invalid request", logging.WARNING, status=status, error=error, client=peer
            )
        # A client that is gone gets nothing; the connection closes all the same.
        with contextlib.suppress(OSError):
            write_nonblock(client, error_reply(status))
