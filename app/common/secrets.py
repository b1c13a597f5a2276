"""Secrets that `toystore up` makes for itself when none is set: random, kept in a file of
its data directory readable by its owner only (0600), and reused by every later start."""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path


def stored_secret(path: Path) -> str:
    """The secret kept in ``path``; a new random one is written there first if it is missing."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(secrets.token_urlsafe(32) + "\n")
    os.chmod(path, 0o600)  # a copy put there by hand may be wider
    value = path.read_text(encoding="utf-8").strip()
    if not value:
        raise ValueError(f"{path} is empty; delete it to have a new secret made")
    return value
