"""One place that turns every failure into the JSON error shape.

Success bodies are ``{"data": ...}``; failures are ``{"error": {"code": <status>, "message":
<sentence>}}``, for our own errors, for Werkzeug's (unknown route, wrong method, body too
large) and for anything unexpected (500, logged with its stack trace, never shown). The shape
and the sentences are those of ``app.common.error_shape``, which the Gunicorn workers
(``app.common.workers``) use too for what they refuse before Flask sees it (414, 431).
"""

from __future__ import annotations

import logging

from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException

from app.common.error_shape import MESSAGES, error_document

log = logging.getLogger(__name__)


class ApiError(Exception):
    """An error with an HTTP status and a human sentence, raised anywhere in a request."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def ok(data: object, status: int = 200) -> tuple[Response, int]:
    return jsonify({"data": data}), status


def readiness(problems: list[str]) -> tuple[Response, int]:
    """A readiness probe's reply: 200 when nothing stands in the way, else 503 naming what."""
    if problems:
        raise ApiError(503, "Not ready: " + "; ".join(problems) + ".")
    return ok({"ready": True})


# Statuses that mean "not now": the reply says when to try again (whole seconds).
_RETRY_LATER = frozenset({429, 503})
RETRY_AFTER_SECONDS = 1


def error_response(status: int, message: str | None = None) -> tuple[Response, int]:
    """The error shape with ``message`` (default: the status's sentence of error_shape)."""
    response = jsonify(error_document(status, message))
    if status in _RETRY_LATER:
        response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response, status


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError):
        return error_response(exc.status, exc.message)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        status = exc.code or 500
        message = MESSAGES.get(status) or exc.description or "Request failed."
        response, status = error_response(status, message)
        if status == 405 and exc.valid_methods:  # type: ignore[attr-defined]
            response.headers["Allow"] = ", ".join(exc.valid_methods)  # type: ignore[attr-defined]
        return response, status

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        log.exception("unhandled error")
        return error_response(500)
