"""The front-end: the store's only public REST API (run as ``app.frontend:create_app()``)."""

from __future__ import annotations

from flask import Flask

from app.common.config import Settings
from app.common.logs import setup_logging
from app.common.web import new_app
from app.frontend import dashboard, routes
from app.frontend.services import Frontend

BLUEPRINTS = (routes.bp, dashboard.bp)  # every route of the front-end


def create_app(settings: Settings | None = None) -> Flask:
    settings = settings or Settings.from_env()
    service = settings.service_name("frontend")
    setup_logging(service, settings.log_level)
    app = new_app(__name__, service, settings.max_body_bytes)
    for blueprint in BLUEPRINTS:
        app.register_blueprint(blueprint)
    frontend = Frontend.build(settings)
    app.extensions["frontend"] = frontend
    # Each Gunicorn worker builds its own app, so each gets its own listener thread.
    frontend.cache.start()
    return app
