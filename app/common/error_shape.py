"""The store's error shape, ``{"error": {"code": <status>, "message": <sentence>}}``, and the
sentence of every HTTP status the store gives without a sentence of its own.

Free of Flask on purpose: the Gunicorn workers (``app.common.workers``) answer with it too,
for requests that never reach Flask, and they are loaded by Gunicorn's master before the
gevent worker monkey-patches the standard library.
"""

from __future__ import annotations

from typing import Any

MESSAGES = {
    400: "The request could not be understood.",
    404: "No such resource.",
    405: "That method is not allowed on this resource.",
    413: "The request body is too large.",
    414: "The request line is too long.",
    415: "The request body must be JSON (Content-Type: application/json).",
    417: "The Expect header cannot be met; only 100-continue is understood.",
    431: "The request headers are too large or too many.",
    500: "Internal error; the request was not completed.",
    501: "That Transfer-Encoding is not supported; only chunked is.",
}


def error_document(status: int, message: str | None = None) -> dict[str, Any]:
    """The error body of ``status``: with ``message``, else the status's sentence."""
    return {"error": {"code": status, "message": message or MESSAGES[status]}}
