"""Order replica: one member of the replicated order log (see replication.py)."""

from __future__ import annotations

from flask import Flask

from app.common.config import Settings
from app.common.logs import setup_logging
from app.common.web import new_app
from app.orders.node import OrderNode
from app.orders.routes import bp


def create_app(settings: Settings | None = None) -> Flask:
    settings = settings or Settings.from_env()
    setup_logging(f"order-{settings.replica_id}", settings.log_level)
    # Catch-up and append batches can be large: no body bound here.
    app = new_app(__name__, None, settings.require_internal_token())
    app.register_blueprint(bp)
    node = OrderNode(settings)
    app.extensions["order_node"] = node
    node.start()
    return app
