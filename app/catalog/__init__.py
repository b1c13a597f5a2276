"""The catalog service: toys, stock, keyed purchases, restock, cache invalidations.

Run with Gunicorn as ``app.catalog:create_app()`` with ONE gthread worker: the process owns
the SQLite file, the write lock and the background threads.
"""

from __future__ import annotations

import logging

from flask import Flask

from app.catalog.catalog_data import DEFAULT_CATALOG, load_toys
from app.catalog.metrics import counted
from app.catalog.publisher import InvalidationPublisher
from app.catalog.restock import Restocker
from app.catalog.routes import bp
from app.catalog.service import CatalogService
from app.catalog.store import CATALOG_FILE, CatalogStore
from app.common.config import Settings
from app.common.logs import log_event, setup_logging
from app.common.web import new_app

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None) -> Flask:
    settings = settings or Settings.from_env()
    service = settings.service_name("catalog")
    setup_logging(service, settings.log_level)

    app = new_app(__name__, service, settings.max_body_bytes, settings.require_internal_token())
    app.register_blueprint(bp)

    publisher = InvalidationPublisher(
        settings.effective_redis_url,
        settings.invalidation_channel,
        settings.cache_prefix,
        settings.redis_timeout,
    )
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    store = CatalogStore(
        settings.data_dir / CATALOG_FILE,
        synchronous=settings.sqlite_synchronous,
        on_change=counted(publisher.submit),
    )
    source = settings.catalog_data or DEFAULT_CATALOG
    if store.load_if_empty(load_toys(source, settings.max_name_length)):
        log_event(log, "catalog loaded", source=str(source), products=store.count())
    elif settings.catalog_data:
        log_event(
            log,
            "CATALOG_DATA not loaded: the database already holds toys;"
            " merge it with `toystore catalog load FILE`",
            level=logging.WARNING,
            source=str(source),
            products=store.count(),
        )
    restocker = Restocker(store, settings.restock_interval, settings.restock_amount)
    app.extensions["catalog"] = CatalogService(settings, store, publisher, restocker)
    publisher.start()
    restocker.start()
    log_event(log, "catalog ready", products=store.count(), database=str(store.path))
    return app
