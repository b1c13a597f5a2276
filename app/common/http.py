"""Calls to other services: pooled keep-alive sessions, a timeout on every call."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import requests
from requests.adapters import HTTPAdapter


class ServiceUnavailable(Exception):
    """The other service did not answer (refused, reset, timed out, or sent no JSON)."""

    def __init__(self, url: str, reason: str, maybe_delivered: bool) -> None:
        super().__init__(f"{url}: {reason}")
        self.url = url
        self.reason = reason
        # False only when the request certainly never reached the server (connection refused).
        self.maybe_delivered = maybe_delivered


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
    """JSON over HTTP to one base URL, through a pooled keep-alive session.

    requests' Session is shared by the threads of a process; its urllib3 pool is thread-safe
    and keeps up to ``pool_size`` connections open.
    """

    def __init__(self, base_url: str, timeout: float, pool_size: int = 32) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()
        adapter = HTTPAdapter(pool_connections=1, pool_maxsize=pool_size, max_retries=0)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)

    def request(
        self,
        method: str,
        path: str,
        json: Any = None,
        headers: dict[str, str] | None = None,
        timeout: float | None = None,
    ) -> Reply:
        url = self.base_url + path
        try:
            response = self.session.request(
                method, url, json=json, headers=headers, timeout=timeout or self.timeout
            )
        except requests.exceptions.ConnectionError as exc:
            refused = "refused" in str(exc).lower() and not isinstance(
                exc, requests.exceptions.ReadTimeout
            )
            raise ServiceUnavailable(url, "connection failed", maybe_delivered=not refused) from exc
        except requests.exceptions.Timeout as exc:
            raise ServiceUnavailable(url, "timed out", maybe_delivered=True) from exc
        except requests.exceptions.RequestException as exc:
            # The server died while sending its reply (ChunkedEncodingError and the like):
            # as unavailable as a refused connection, but the request did arrive.
            raise ServiceUnavailable(url, "reply cut off", maybe_delivered=True) from exc
        try:
            body = response.json()
        except ValueError as exc:
            raise ServiceUnavailable(url, "reply is not JSON", maybe_delivered=True) from exc
        if not isinstance(body, dict):
            raise ServiceUnavailable(url, "reply is not a JSON object", maybe_delivered=True)
        return Reply(response.status_code, body)

    def get(self, path: str, **kwargs: Any) -> Reply:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, json: Any = None, **kwargs: Any) -> Reply:
        return self.request("POST", path, json=json, **kwargs)

    def close(self) -> None:
        self.session.close()
