"""The public REST API (SPEC section 2)."""

from __future__ import annotations

import uuid
from importlib.resources import files
from typing import Any

from flask import Blueprint, Response, current_app, request

from app.common import validation
from app.common.errors import ApiError, ok, readiness
from app.common.http import ServiceUnavailable
from app.frontend.services import CATALOG_DOWN, Frontend

bp = Blueprint("frontend", __name__)

PUBLIC_FIELDS = ("name", "price", "quantity")
# The catalog's per-toy change counter, in a header so the public JSON stays as the spec says.
# It lets a client (the chaos checker) order its reads after its own purchases.
VERSION_HEADER = "X-Product-Version"
REPLAYED_HEADER = "Idempotent-Replayed"
READY_TIMEOUT = 1.0  # seconds /ready may spend finding a leader
# The OpenAPI 3 document of this API, kept beside this module and served byte for byte.
OPENAPI_DOCUMENT = files(__package__).joinpath("openapi.json").read_bytes()


def _frontend() -> Frontend:
    return current_app.extensions["frontend"]


def _public(product: dict[str, Any]) -> dict[str, Any]:
    """The catalog's product without its internal fields (such as ``version``)."""
    return {field: product[field] for field in PUBLIC_FIELDS}


@bp.get("/products/<name>")
def get_product(name: str):
    frontend = _frontend()
    name = validation.toy_name(name, frontend.settings.max_name_length)
    product = frontend.cache.get(name, frontend.load_product)
    if product is None:
        raise ApiError(404, f"There is no toy named {name!r}.")
    response, status = ok(_public(product))
    if isinstance(product.get("version"), int):
        response.headers[VERSION_HEADER] = str(product["version"])
    return response, status


@bp.get("/products", strict_slashes=False)
def list_products():
    try:
        reply = _frontend().catalog.get("/products")
    except ServiceUnavailable:
        raise ApiError(503, CATALOG_DOWN) from None
    if reply.status != 200 or not isinstance(reply.data, list):
        raise ApiError(503, CATALOG_DOWN)
    return ok([_public(product) for product in reply.data])


@bp.post("/orders")
@bp.post("/orders/")
def place_order():
    frontend = _frontend()
    settings = frontend.settings
    header = request.headers.get("Idempotency-Key")
    key = uuid.uuid4().hex if header is None else validation.idempotency_key(header)
    name, quantity = validation.order_request(
        validation.json_body(request), settings.max_name_length, settings.max_order_quantity
    )
    placed = frontend.orders.place_order(name, quantity, key)
    # 201 for the request that created the order; a replay of its key gets 200, marked.
    response, status = ok({"order_number": placed.number}, 200 if placed.replayed else 201)
    response.headers["Location"] = f"/orders/{placed.number}"
    if placed.replayed:
        response.headers[REPLAYED_HEADER] = "true"
    if placed.version is not None:
        response.headers[VERSION_HEADER] = str(placed.version)
    return response, status


@bp.get("/orders/<raw>")
@bp.get("/orders/<raw>/")
def get_order(raw: str):
    return ok(_frontend().orders.get_order(validation.order_number(raw)))


@bp.get("/ready")
def ready():
    """Able to serve: a leader for orders, and Redis or the catalog (the cache's fallback)
    for product reads."""
    frontend = _frontend()
    problems = []
    if frontend.orders.find_leader(READY_TIMEOUT) is None:
        problems.append("no order leader")
    if not frontend.cache.ping() and not frontend.catalog_answers():
        problems.append("neither Redis nor the catalog answers")
    return readiness(problems)


@bp.get("/health")
def health():
    frontend = _frontend()
    leader = frontend.orders.leader
    return ok(
        {
            "redis": frontend.cache.ping(),
            "cache_enabled": frontend.cache.enabled,
            "subscribed": frontend.cache.subscribed,
            "leader_id": leader[0] if leader else None,
            "term": leader[1] if leader else None,
        }
    )


@bp.get("/openapi.json")
def openapi_document():
    return Response(OPENAPI_DOCUMENT, mimetype="application/json")
