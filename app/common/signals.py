"""Stopping cleanly on a signal: SIGTERM and SIGHUP take the same path as Ctrl-C."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Mapping
from typing import Any

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

Handler = Callable[[int, Any], Any] | int | None


def raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def set_stop_signals(handler: Handler) -> dict[int, Handler]:
    """Handle SIGINT, SIGTERM and SIGHUP with ``handler``; return the handlers they had.

    SIGINT is set too because a shell starts background jobs with it ignored. Only the main
    thread may set handlers; elsewhere nothing changes and nothing is returned.
    """
    if threading.current_thread() is not threading.main_thread():
        return {}
    return {sig: signal.signal(sig, handler) for sig in STOP_SIGNALS}


def restore_signals(previous: Mapping[int, Handler]) -> None:
    for sig, handler in previous.items():
        signal.signal(sig, handler)
