"""The benchmark's ceiling: the least a front-end request can cost on this machine.

A Flask app with the front-end's Gunicorn settings whose every request is one Redis GET and a
JSON reply, as a cache hit is. Nothing the store does on a hit can be cheaper, so the store's
cached-query throughput is reported as a fraction of this one's, measured in the same run.
"""

from __future__ import annotations

import json

from flask import Flask, Response

from app.common.config import Settings
from app.common.redis_client import redis_client

KEY = "toystore:bench:ceiling"


def create_app(settings: Settings | None = None) -> Flask:
    settings = settings or Settings.from_env()
    client = redis_client(settings.effective_redis_url, settings.redis_timeout)
    client.set(KEY, json.dumps({"name": "Tux", "price": 15.99, "quantity": 100}))
    app = Flask(__name__)

    @app.get("/products/<name>")
    def product(name: str) -> Response:
        value = client.get(KEY)
        return Response(b'{"data": ' + value + b"}", mimetype="application/json")

    return app
