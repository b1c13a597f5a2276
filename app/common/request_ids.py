"""The request id: one ``X-Request-ID`` followed through every service a request reaches.

Each service takes a well-formed id from the request (the front-end's caller, or the service
that called it) or makes one, and holds it in a context variable while it serves the request:
the shared HTTP client sends it on every call (``app.common.http``) and every log line carries
it (``app.common.logs``). Work handed to a ``app.common.pools.ContextPool`` keeps the id of
whoever handed it.

Gunicorn's master imports this module (through its configuration and the logs): it must not
import ``concurrent.futures`` (see ``app.common.workers``).
"""

from __future__ import annotations

import contextvars
import re
import uuid

HEADER = "X-Request-ID"
MAX_LENGTH = 128
# Letters, digits and a few separators: enough for UUIDs and tracing ids, nothing that could
# break a log line or a header.
_WELL_FORMED = re.compile(rf"[A-Za-z0-9._:-]{{1,{MAX_LENGTH}}}")

_current: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)


def accept(given: str | None) -> str:
    """``given`` if it is a well-formed request id, else a new one."""
    if given is not None and _WELL_FORMED.fullmatch(given):
        return given
    return uuid.uuid4().hex


def current() -> str | None:
    """The id of the request being served in this context, if any."""
    return _current.get()


def begin(request_id: str) -> contextvars.Token[str | None]:
    """Make ``request_id`` the current one; ``end`` with the token undoes it."""
    return _current.set(request_id)


def end(token: contextvars.Token[str | None]) -> None:
    _current.reset(token)
