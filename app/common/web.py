"""What every service's Flask app has in common: JSON in and out through orjson, the error
shape for every failure, and a bound on request bodies."""

from __future__ import annotations

from typing import Any

import orjson
from flask import Flask, Response
from flask.json.provider import JSONProvider

from app.common.errors import register_error_handlers


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


def new_app(import_name: str, max_body_bytes: int | None) -> Flask:
    """A Flask app with our JSON provider, error handlers and body bound (None: unbounded)."""
    app = Flask(import_name)
    app.json = OrjsonProvider(app)
    app.config["MAX_CONTENT_LENGTH"] = max_body_bytes
    register_error_handlers(app)
    return app
