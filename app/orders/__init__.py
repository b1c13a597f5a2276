"""Order replica: one member of the replicated order log (see replication.py)."""

from __future__ import annotations

from flask import Flask

from app.common.config import Settings
from app.common.logs import setup_logging
from app.common.metrics import on_scrape
from app.common.web import new_app
from app.orders.metrics import record_state
from app.orders.node import OrderNode
from app.orders.routes import bp


def create_app(settings: Settings | None = None) -> Flask:
    settings = settings or Settings.from_env()
    service = settings.service_name("replica")
    setup_logging(service, settings.log_level)
    # Catch-up and append batches can be large: no body bound here.
    app = new_app(__name__, service, None, settings.require_internal_token())
    app.register_blueprint(bp)
    node = OrderNode(settings)
    app.extensions["order_node"] = node
    on_scrape(app, lambda: record_state(node.health(), node.replication_lag()))
    node.start()
    return app
