"""Every line a service writes is JSON: its events (with the request id while one is served),
a crashed thread's traceback and Python's warnings."""

from __future__ import annotations

import io
import json
import logging
import sys
import threading
import warnings

import pytest

from app.common import request_ids
from app.common.logs import log_event, setup_logging


@pytest.fixture
def lines(monkeypatch):
    """The JSON lines this process writes to stderr once set up as service ``test``."""
    stderr = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stderr)
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", list(root.handlers))
    monkeypatch.setattr(root, "level", root.level)
    monkeypatch.setattr(threading, "excepthook", threading.excepthook)
    setup_logging("test")
    yield lambda: [json.loads(line) for line in stderr.getvalue().splitlines()]
    logging.captureWarnings(False)


def test_lines_carry_the_request_id_while_a_request_is_served(lines):
    log = logging.getLogger("test")
    token = request_ids.begin("req-1")
    log_event(log, "inside", n=1)
    request_ids.end(token)
    log_event(log, "outside")
    inside, outside = lines()
    assert inside == {**inside, "service": "test", "event": "inside", "request_id": "req-1"}
    assert inside["n"] == 1 and "request_id" not in outside


def test_a_crashed_thread_and_a_warning_are_json_lines(lines):
    thread = threading.Thread(target=lambda: 1 / 0, name="doomed")
    thread.start()
    thread.join()
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn("careful", UserWarning, stacklevel=1)
    crash, warning = lines()
    assert crash["level"] == "critical" and crash["thread"] == "doomed"
    assert "ZeroDivisionError" in crash["exception"]
    assert warning["level"] == "warning" and "careful" in warning["event"]
