"""The history of a chaos run: one JSON object per line, appended by many threads.

Records have a ``type``: ``request`` (one client call with its start and end times, status,
reply and the version header), ``fault`` (``phase`` start or end), ``meta`` (run settings,
the deck of fault kinds and the kinds left out of it), ``note`` and ``shopper-crash``.
Times are seconds on this machine's monotonic clock since the run began, so intervals from
different threads compare. The reader checks every record's fields, so the checker can trust
them.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any, TextIO

from app.common.http import succeeded


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


_NUMBER = (int, float)
_NONE = type(None)
# The fields each record type must carry, with their JSON types; the checker relies on them.
_FIELDS: dict[str, dict[str, type | tuple[type, ...]]] = {
    "meta": {
        "replicas": list, "request_timeout": _NUMBER, "cache_prefix": str, "kinds": list,
        "left_out": dict,
    },
    "request": {
        "shopper": int, "op": str, "start": _NUMBER, "end": _NUMBER, "status": (int, _NONE),
    },
    "fault": {"phase": str, "kind": str, "targets": list, "t": _NUMBER},
    "shopper-crash": {"shopper": int, "error": str},
    "note": {"t": _NUMBER, "message": str},
}  # fmt: skip
# A request's further fields, by operation; and those of a 2xx reply.
_OP_FIELDS: dict[str, dict[str, type | tuple[type, ...]]] = {
    "read": {"toy": str},
    "order": {"toy": str, "quantity": int, "key": str},
    "lookup": {"number": int},
}
_REPLY_FIELDS: dict[str, dict[str, type | tuple[type, ...]]] = {
    "read": {},
    "order": {"number": (int, _NONE), "replayed": bool},
    "lookup": {"reply": list},
}
_OPTIONAL: dict[str, type | tuple[type, ...]] = {"version": int, "error": str}
_ITEMS = {"replicas": int, "targets": str}  # what the lists among the fields hold


def read_history(path: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """The well-formed records of a history file, and a one-line reason for every line that
    is not one (not JSON, or a record lacking a field or holding one of the wrong type)."""
    try:
        lines = path.read_bytes().splitlines()
    except OSError as exc:
        return [], [f"history {path}: cannot read it: {exc.strerror or exc}"]
    records, problems = [], []
    for number, line in enumerate(lines, start=1):
        try:
            record = json.loads(line)
        except ValueError:
            problems.append(f"history line {number}: not JSON: {line[:60]!r}")
            continue
        problem = _malformed(record)
        if problem:
            problems.append(f"history line {number}: {problem}")
        else:
            records.append(record)
    return records, problems


def _malformed(record: Any) -> str | None:
    """Why a decoded line is not a usable record, or None if it is one."""
    if not isinstance(record, dict):
        return "not a JSON object"
    fields = _FIELDS.get(record.get("type"))  # type: ignore[arg-type]
    if fields is None:
        return f"unknown record type {record.get('type')!r}"
    if record["type"] == "request":
        op = record.get("op")
        if op not in _OP_FIELDS:
            return f"request with unknown op {op!r}"
        fields = {**fields, **_OP_FIELDS[op]}
        if succeeded(record.get("status")):
            fields.update(_REPLY_FIELDS[op])
    for name, kind in fields.items():
        if not isinstance(record.get(name), kind):
            return f"{record['type']} record without a valid {name!r}"
    for name, kind in _OPTIONAL.items():
        if name in record and not isinstance(record[name], kind):
            return f"{record['type']} record with an invalid {name!r}"
    for name, kind in _ITEMS.items():
        if name in fields and not all(isinstance(item, kind) for item in record[name]):
            return f"{record['type']} record with an invalid {name!r}"
    if "reply" in fields and not (
        len(record["reply"]) == 3 and all(isinstance(v, (int, str, _NONE)) for v in record["reply"])
    ):
        return "lookup record whose reply is not [number, name, quantity]"
    return None
