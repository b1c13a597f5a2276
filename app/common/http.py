"""Calls to other services: pooled keep-alive connections, a timeout on every call.

Built on urllib3 rather than requests: a call through requests costs about 0.75 ms of CPU
against 0.3 ms for urllib3 on its own (measured here), and an order makes several such
calls; on a 2-core machine that CPU is the store's throughput.
"""

from __future__ import annotations

from dataclasses import dataclass
from http.client import RemoteDisconnected
from typing import Any

import orjson
import urllib3
from urllib3.exceptions import HTTPError, NewConnectionError, ProtocolError

from app.common import request_ids


class ServiceUnavailable(Exception):
    """The other service did not answer (refused, reset, timed out, or sent no JSON)."""

    def __init__(self, url: str, reason: str, maybe_delivered: bool) -> None:
        super().__init__(f"{url}: {reason}")
        self.url = url
        self.reason = reason
        # False only when the request certainly never reached the server (connection refused).
        self.maybe_delivered = maybe_delivered


def succeeded(status: int | None) -> bool:
    """A 2xx (None: there was no reply): the request did what it asked (an order is 201 when
    created, 200 replayed)."""
    return status is not None and 200 <= status < 300


@dataclass(frozen=True)
class Reply:
    status: int
    body: dict[str, Any]

    @property
    def data(self) -> Any:
        return self.body.get("data")

    @property
    def error_message(self) -> str:
        error = self.body.get("error") or {}
        return str(error.get("message", ""))


class ServiceClient:
    """JSON over HTTP to one base URL, through a pool of keep-alive connections.

    Shared by the threads of a process: urllib3's pool is thread-safe and keeps up to
    ``pool_size`` connections open. ``token`` is the store's internal credential: every call
    carries it as ``Authorization: Bearer <token>`` (this is the one place that adds it), and
    the id of the request being served, if any, as ``X-Request-ID``.
    """

    def __init__(self, base_url: str, timeout: float, token: str, pool_size: int = 32) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.pool = urllib3.connection_from_url(self.base_url, maxsize=pool_size, block=False)
        self._auth = {"Authorization": f"Bearer {token}"}

    def request(
        self,
        method: str,
        path: str,
        json: Any = None,
        headers: dict[str, str] | None = None,
        timeout: float | None = None,
    ) -> Reply:
        url = self.base_url + path
        body = None if json is None else orjson.dumps(json)
        all_headers = {"Content-Type": "application/json"} if body is not None else {}
        all_headers.update(self._auth)
        request_id = request_ids.current()
        if request_id is not None:
            all_headers[request_ids.HEADER] = request_id
        all_headers.update(headers or {})
        # A GET goes out a second time only if the server dropped the kept-alive connection
        # before any reply: Gunicorn closes idle connections on its own schedule, and a reused
        # one can be closed just as the request is sent. A GET changes nothing, so resending
        # it is safe; other methods are left to their callers' idempotency keys.
        attempts = 2 if method == "GET" else 1
        for attempt in range(1, attempts + 1):
            try:
                response = self.pool.urlopen(
                    method,
                    path,
                    body=body,
                    headers=all_headers,
                    timeout=timeout or self.timeout,
                    retries=False,
                    redirect=False,
                )
                break
            except NewConnectionError as exc:
                # Refused (or unroutable): the request never left this process.
                raise ServiceUnavailable(url, "connection failed", maybe_delivered=False) from exc
            except ProtocolError as exc:
                if attempt < attempts and _dropped_before_reply(exc):
                    continue
                raise ServiceUnavailable(url, "connection broken", maybe_delivered=True) from exc
            except HTTPError as exc:
                # Timed out, or cut off mid-reply: the request may have arrived.
                raise ServiceUnavailable(url, type(exc).__name__, maybe_delivered=True) from exc
        try:
            data = orjson.loads(response.data)
        except orjson.JSONDecodeError as exc:
            raise ServiceUnavailable(url, "reply is not JSON", maybe_delivered=True) from exc
        if not isinstance(data, dict):
            raise ServiceUnavailable(url, "reply is not a JSON object", maybe_delivered=True)
        return Reply(response.status, data)

    def get(self, path: str, **kwargs: Any) -> Reply:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, json: Any = None, **kwargs: Any) -> Reply:
        return self.request("POST", path, json=json, **kwargs)

    def close(self) -> None:
        self.pool.close()


def _dropped_before_reply(exc: ProtocolError) -> bool:
    """The server closed the connection before sending a byte of its reply."""
    reason = exc.args[1] if len(exc.args) > 1 else None
    return isinstance(reason, RemoteDisconnected | ConnectionResetError | BrokenPipeError)
