"""The front-end: the store's only public REST API (run as ``app.frontend:create_app()``)."""

from __future__ import annotations

from flask import Flask

from app.common.config import Settings
from app.common.errors import register_error_handlers
from app.common.logs import setup_logging
from app.frontend.routes import bp
from app.frontend.services import Frontend


def create_app(settings: Settings | None = None) -> Flask:
    settings = settings or Settings.from_env()
    setup_logging("frontend", settings.log_level)
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.json.sort_keys = False
    register_error_handlers(app)
    app.register_blueprint(bp)
    frontend = Frontend.build(settings)
    app.extensions["frontend"] = frontend
    # Each Gunicorn worker builds its own app, so each gets its own listener thread.
    frontend.cache.start()
    return app
