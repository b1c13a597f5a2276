"""Structured logs: one JSON object a line on stderr, with the service's name, and the
request id (``request_id``) on every line written while a request is served.

Log events, not requests: ``log_event(log, "leader elected", leader=3, term=7)``. The one
line per request is Gunicorn's access log (``app.common.gunicorn_conf``), JSON as well.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time

from app.common import request_ids

# Where a service's app leaves, in the WSGI environ, what the access log line of the request
# reports beyond what Gunicorn knows: its route template and request id.
ACCESS_ENVIRON_KEY = "toystore.access"


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "service": self.service,
            "event": record.getMessage(),
        }
        request_id = request_ids.current()
        if request_id is not None:
            entry["request_id"] = request_id
        entry.update(getattr(record, "fields", {}))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def setup_logging(service: str, level: str = "INFO") -> None:
    """Send this process's logs to stderr as JSON lines. Safe to call more than once."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Per-request lines from the HTTP stack are noise to an operator.
    for noisy in ("urllib3", "werkzeug"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # What Python would print as plain text goes through the JSON handler too.
    logging.captureWarnings(True)
    threading.excepthook = _log_thread_crash


def _log_thread_crash(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit:
        return
    logging.getLogger(__name__).critical(
        "thread crashed",
        exc_info=(args.exc_type, args.exc_value, args.exc_traceback),
        extra={"fields": {"thread": getattr(args.thread, "name", None)}},
    )


def log_event(logger: logging.Logger, event: str, level: int = logging.INFO, **fields) -> None:
    logger.log(level, event, extra={"fields": fields})
