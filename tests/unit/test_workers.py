"""The Gunicorn command lines choose the store's worker classes, and those answer Gunicorn's
own refusals in the JSON error shape."""

from __future__ import annotations

import orjson
import pytest
from gunicorn.http.errors import (
    InvalidHeader,
    InvalidRequestLine,
    InvalidResponseHeader,
    LimitRequestHeaders,
    LimitRequestLine,
)
from gunicorn.util import load_class

from app.cluster import gunicorn_argv
from app.common.config import ConfigError, Settings
from app.common.error_shape import MESSAGES
from app.common.workers import error_reply, error_status


def flag(argv: list[str], name: str) -> str | None:
    return argv[argv.index(name) + 1] if name in argv else None


def test_the_front_end_runs_gevent_with_its_header_timeout() -> None:
    settings = Settings.from_env({"FRONTEND_HEADER_TIMEOUT": "7", "FRONTEND_WORKERS": "3"})
    argv = gunicorn_argv("frontend", settings, 8000)
    assert flag(argv, "--worker-class") == "app.common.workers.gevent.GeventWorker"
    assert flag(argv, "--workers") == "3" and flag(argv, "--keep-alive") == "7"
    assert "--threads" not in argv


def test_the_front_end_can_run_gthread_and_internal_services_always_do() -> None:
    settings = Settings.from_env({"FRONTEND_WORKER_CLASS": "gthread", "FRONTEND_THREADS": "5"})
    frontend = gunicorn_argv("frontend", settings, 8000)
    assert flag(frontend, "--worker-class") == "app.common.workers.gthread.ThreadWorker"
    assert flag(frontend, "--threads") == "5"
    for kind in ("catalog", "replica"):
        argv = gunicorn_argv(kind, Settings(), 8001)
        assert flag(argv, "--worker-class") == "app.common.workers.gthread.ThreadWorker"
        assert flag(argv, "--workers") == "1" and flag(argv, "--keep-alive") == "30"


@pytest.mark.parametrize(
    "path", ["app.common.workers.gevent.GeventWorker", "app.common.workers.gthread.ThreadWorker"]
)
def test_the_worker_classes_load_as_gunicorn_loads_them(path: str) -> None:
    assert callable(load_class(path).handle_error)


def test_an_unknown_worker_class_is_refused() -> None:
    with pytest.raises(ConfigError, match="FRONTEND_WORKER_CLASS"):
        Settings.from_env({"FRONTEND_WORKER_CLASS": "sync"})


@pytest.mark.parametrize(
    ("exc", "status"),
    [
        (LimitRequestLine(8192, 4094), 414),
        (LimitRequestHeaders("limit request headers fields"), 431),
        (InvalidRequestLine("GET"), 400),
        (InvalidHeader("X"), 400),
        (InvalidResponseHeader("X"), 500),  # our own reply's fault, not the client's
        (RuntimeError("boom"), 500),
    ],
)
def test_gunicorn_failures_map_to_statuses(exc: Exception, status: int) -> None:
    assert error_status(exc) == status


def test_an_error_reply_is_a_whole_json_response_that_closes() -> None:
    head, _, body = error_reply(431).partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0] == "HTTP/1.1 431 Request Header Fields Too Large"
    assert {"Connection: close", "Content-Type: application/json"} <= set(lines)
    assert f"Content-Length: {len(body)}" in lines
    assert orjson.loads(body) == {"error": {"code": 431, "message": MESSAGES[431]}}
