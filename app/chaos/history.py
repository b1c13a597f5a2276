"""The history of a chaos run: one JSON object per line, appended by many threads.

Records have a ``type``: ``request`` (one client call with its start and end times, status,
reply and the version header), ``fault`` (``phase`` start or end), and ``meta`` (run
settings). Times are seconds on this machine's monotonic clock since the run began, so
intervals from different threads compare.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO


class History:
    """Thread-safe writer of history records. Each line is flushed as it is written so a
    crashed run still leaves a readable history."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._file: TextIO = path.open("w", encoding="utf-8")
        self._lock = threading.Lock()
        self._origin = time.monotonic()

    def now(self) -> float:
        return round(time.monotonic() - self._origin, 6)

    def record(self, record_type: str, **fields: Any) -> None:
        line = json.dumps({"type": record_type, **fields}, separators=(",", ":"))
        with self._lock:
            if self._file.closed:  # a straggler after the run ended: nothing to judge
                return
            self._file.write(line + "\n")
            self._file.flush()

    def close(self) -> None:
        with self._lock:
            self._file.close()


def read_history(path: Path) -> Iterator[dict[str, Any]]:
    """The records of a history file; a torn last line (a killed run) is skipped."""
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            try:
                yield json.loads(line)
            except ValueError:
                continue
