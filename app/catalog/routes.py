"""The catalog's internal HTTP API (docs/design.md, "Catalog"), plus /ledger and /health."""

from __future__ import annotations

import sqlite3

from flask import Blueprint, Response, current_app, request

from app.catalog.metrics import STOCKOUTS
from app.catalog.service import CatalogService
from app.catalog.store import OutOfStock, StoreError
from app.common.errors import ApiError, ok, readiness
from app.common.validation import (
    LOG_KEY_MAX_LENGTH,
    check_fields,
    json_body,
    log_key,
    non_negative_int,
    positive_int,
    toy_name,
)

bp = Blueprint("catalog", __name__)

Reply = tuple[Response, int]

MAX_SETTLE_KEYS = 10_000
# A full settle body (10,000 keys of up to LOG_KEY_MAX_LENGTH characters, quoted, with commas)
# is far above MAX_BODY_BYTES, which is sized for orders; this one route gets a bound that
# fits it.
SETTLE_MAX_BODY_BYTES = MAX_SETTLE_KEYS * (LOG_KEY_MAX_LENGTH + 3) + 1024


def _service() -> CatalogService:
    return current_app.extensions["catalog"]


def _toy_name(value: object) -> str:
    return toy_name(value, _service().settings.max_name_length)


@bp.get("/products")
def list_products() -> Reply:
    return ok([product.as_dict() for product in _service().store.list_products()])


@bp.get("/products/<name>")
def get_product(name: str) -> Reply:
    name = _toy_name(name)
    product = _service().store.get(name)
    if product is None:
        raise ApiError(404, f"There is no toy called {name!r}.")
    return ok(product.as_dict())


@bp.post("/purchases")
def purchase() -> Reply:
    service = _service()
    body = json_body(request)
    check_fields(body, {"key", "name", "quantity", "term", "attempt"})
    key = log_key(body["key"])
    name = _toy_name(body["name"])
    quantity = positive_int(body["quantity"], "quantity", service.settings.max_order_quantity)
    term = non_negative_int(body["term"], "term")
    attempt = non_negative_int(body["attempt"], "attempt")
    try:
        result = service.store.purchase(key, name, quantity, term, attempt)
    except StoreError as exc:
        if isinstance(exc, OutOfStock):
            STOCKOUTS.inc()
        raise ApiError(exc.status, str(exc)) from None
    return ok(result.as_dict())


@bp.post("/purchases/undo")
def undo() -> Reply:
    body = json_body(request)
    check_fields(body, {"key", "term", "attempt"})
    key = log_key(body["key"])
    term = non_negative_int(body["term"], "term")
    attempt = non_negative_int(body["attempt"], "attempt")
    return ok({"key": key, "undone": _service().store.undo(key, term, attempt)})


@bp.post("/purchases/reconcile")
def reconcile() -> Reply:
    body = json_body(request)
    check_fields(body, {"term"})
    term = non_negative_int(body["term"], "term")
    fence, pending = _service().store.reconcile(term)
    return ok({"fence": fence, "pending": pending})


@bp.post("/purchases/settle")
def settle() -> Reply:
    request.max_content_length = SETTLE_MAX_BODY_BYTES
    body = json_body(request)
    check_fields(body, {"keys"})
    keys = body["keys"]
    if not isinstance(keys, list) or len(keys) > MAX_SETTLE_KEYS:
        raise ApiError(400, f"The keys must be a list of at most {MAX_SETTLE_KEYS} keys.")
    keys = [log_key(key) for key in keys]
    return ok({"settled": _service().store.settle(keys)})


@bp.get("/ledger")
def ledger() -> Reply:
    return ok([row.as_dict() for row in _service().store.ledger()])


@bp.get("/health")
def health() -> Reply:
    return ok({"status": "ok", "products": _service().store.count()})


@bp.get("/ready")
def ready() -> Reply:
    """Able to serve: the database answers a read and holds toys."""
    try:
        products = _service().store.count()
    except sqlite3.Error as exc:
        return readiness([f"the database cannot be read ({exc})"])
    return readiness([] if products else ["the database holds no toys"])
