"""Checks for everything a client can send. Each failure raises ApiError with a 4xx."""

from __future__ import annotations

import re
from typing import Any

from flask import Request

from app.common.errors import ApiError

_ORDER_NUMBER = re.compile(r"[0-9]{1,18}")
_KEY_CHARS = r"[A-Za-z0-9._:\-]{1,128}"
_KEY = re.compile(_KEY_CHARS)
# A key as the order log and the catalog hold it: a client's key, or one reused after it
# expired, marked with ~ and a log index (app/orders/keys.py).
_LOG_KEY = re.compile(_KEY_CHARS + r"(~[0-9]{1,16})?")
LOG_KEY_MAX_LENGTH = 128 + 1 + 16


def json_body(request: Request) -> dict[str, Any]:
    """The request's JSON object body, or a 4xx saying why not."""
    mimetype = request.mimetype or ""
    if mimetype != "application/json":
        raise ApiError(415, "The request body must be JSON (Content-Type: application/json).")
    body = request.get_json(silent=True)
    if body is None:
        raise ApiError(400, "The request body is not valid JSON.")
    if not isinstance(body, dict):
        raise ApiError(400, "The request body must be a JSON object.")
    return body


def check_fields(
    body: dict[str, Any], required: set[str], optional: set[str] = frozenset()
) -> None:
    missing = sorted(required - body.keys())
    if missing:
        raise ApiError(400, f"Missing field: {missing[0]}.")
    unknown = sorted(body.keys() - required - optional)
    if unknown:
        raise ApiError(400, f"Unknown field: {unknown[0][:64]}.")


def toy_name(value: Any, max_length: int) -> str:
    """A toy name: a non-empty string of printable characters, at most max_length long."""
    if not isinstance(value, str):
        raise ApiError(400, "The toy name must be a string.")
    if not value or len(value) > max_length:
        raise ApiError(400, f"The toy name must be 1 to {max_length} characters long.")
    if not value.isprintable() or "\ufffd" in value:
        raise ApiError(400, "The toy name contains characters that are not allowed.")
    return value


def positive_int(value: Any, field: str, maximum: int) -> int:
    """A JSON integer from 1 to maximum; booleans, floats and strings are refused."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ApiError(400, f"The {field} must be an integer.")
    if value < 1:
        raise ApiError(400, f"The {field} must be at least 1.")
    if value > maximum:
        raise ApiError(400, f"The {field} must be at most {maximum}.")
    return value


# Terms, indexes, ids and attempts between services: integers any JSON reader holds exactly.
PROTOCOL_LIMIT = 2**53


def non_negative_int(value: Any, field: str) -> int:
    """A JSON integer in 0 <= n < PROTOCOL_LIMIT; booleans, floats and strings are refused."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < PROTOCOL_LIMIT:
        raise ApiError(400, f"The {field} must be an integer from 0 to {PROTOCOL_LIMIT - 1}.")
    return value


def order_number(raw: str) -> int:
    """An order number from a URL path segment."""
    if not _ORDER_NUMBER.fullmatch(raw):
        raise ApiError(400, "The order number must be a non-negative integer.")
    return int(raw)


def idempotency_key(value: Any) -> str:
    """A client's Idempotency-Key."""
    if not isinstance(value, str) or not _KEY.fullmatch(value):
        raise ApiError(
            400, "The idempotency key must be 1 to 128 letters, digits or any of . _ : -"
        )
    return value


def log_key(value: Any) -> str:
    """An order's key between services: a client's key, or its reuse after expiry."""
    if not isinstance(value, str) or not _LOG_KEY.fullmatch(value):
        raise ApiError(400, "The key must be an idempotency key, optionally with ~ and an index.")
    return value


def order_request(body: dict[str, Any], max_name_length: int, max_quantity: int) -> tuple[str, int]:
    """The (name, quantity) of a public order body."""
    check_fields(body, {"name", "quantity"})
    return (
        toy_name(body["name"], max_name_length),
        positive_int(body["quantity"], "quantity", max_quantity),
    )
