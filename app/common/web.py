"""What every service's Flask app has in common: JSON in and out through orjson, the error
shape for every failure, a bound on request bodies (chunked ones included), the request id
(taken or made, echoed, held while the request is served), request metrics and ``/metrics``,
and for internal services the check of the store's credential before any route runs."""

from __future__ import annotations

import hmac
import io
from collections.abc import Callable, Iterable
from typing import Any

import orjson
from flask import Flask, Response, g, request
from flask.json.provider import JSONProvider

from app.common import metrics, request_ids
from app.common.errors import error_response, register_error_handlers
from app.common.logs import ACCESS_ENVIRON_KEY

# Probes answer anyone: orchestrators and monitoring carry no credential.
PROBES = frozenset({"/health", "/ready", "/metrics"})
CREDENTIAL_NEEDED = "This is an internal endpoint of the store; its credential is needed."


class OrjsonProvider(JSONProvider):
    """Flask's JSON through orjson: several times faster than the standard library's, which
    shows on the front-end's cache hits, where encoding the reply is most of our own work."""

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        return orjson.dumps(obj).decode()

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        return orjson.loads(s)

    def response(self, *args: Any, **kwargs: Any) -> Response:
        body = orjson.dumps(self._prepare_response_obj(args, kwargs))
        return self._app.response_class(body, mimetype="application/json")


WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def count_streamed_bodies(wsgi_app: WsgiApp, max_body_bytes: int) -> WsgiApp:
    """``wsgi_app`` with every chunked request body (one without a Content-Length) read first
    and counted as it arrives, at most ``max_body_bytes`` + 1 bytes of it.

    The app then sees an ordinary body of known length: the whole body when it is within the
    bound, else one byte more than allowed, which it refuses with 413 like any declared
    length over the bound. Werkzeug on its own would cut such a body silently at the bound
    and hand the app the truncated start."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower():
            body = environ["wsgi.input"].read(max_body_bytes + 1)
            environ["wsgi.input"] = io.BytesIO(body)
            environ["CONTENT_LENGTH"] = str(len(body))
            del environ["HTTP_TRANSFER_ENCODING"]
        return wsgi_app(environ, start_response)

    return app


def new_app(
    import_name: str,
    service: str,
    max_body_bytes: int | None,
    internal_token: str | None = None,
) -> Flask:
    """A Flask app with our JSON provider, error handlers and body bound (None: unbounded),
    its requests followed by id and counted under the name ``service``.

    With ``internal_token`` every request but the probes must carry it as a bearer token, or
    it is refused with 401 before any route runs (so it changes nothing)."""
    app = Flask(import_name)
    app.json = OrjsonProvider(app)
    app.config["MAX_CONTENT_LENGTH"] = max_body_bytes
    if max_body_bytes is not None:
        app.wsgi_app = count_streamed_bodies(app.wsgi_app, max_body_bytes)  # type: ignore[method-assign]
    register_error_handlers(app)
    # First, so that even a refused request is followed and counted.
    _follow_request_ids(app)
    metrics.install(app, service)
    if internal_token is not None:
        expected = f"Bearer {internal_token}".encode()

        @app.before_request
        def _require_credential() -> tuple[Response, int] | None:
            if request.path in PROBES:
                return None
            given = request.headers.get("Authorization", "").encode()
            if hmac.compare_digest(given, expected):
                return None
            response, status = error_response(401, CREDENTIAL_NEEDED)
            response.headers["WWW-Authenticate"] = "Bearer"
            return response, status

    return app


def _follow_request_ids(app: Flask) -> None:
    """Take the request's X-Request-ID or make one, hold it while the request is served,
    echo it on the reply, and leave it and the route for the access log."""

    @app.before_request
    def _take_request_id() -> None:
        request_id = request_ids.accept(request.headers.get(request_ids.HEADER))
        g.request_id_token = request_ids.begin(request_id)
        request.environ[ACCESS_ENVIRON_KEY] = {"request_id": request_id}

    @app.after_request
    def _echo_request_id(response: Response) -> Response:
        access = request.environ[ACCESS_ENVIRON_KEY]
        access["route"] = metrics.route()
        response.headers[request_ids.HEADER] = access["request_id"]
        return response

    @app.teardown_request
    def _drop_request_id(_error: BaseException | None) -> None:
        request_ids.end(g.request_id_token)
