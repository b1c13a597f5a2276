"""Real disk faults for chaos runs: a small disk of its own per replica, filled up or lost.

``SmallDisks`` mounts a small tmpfs on each replica's directory before the store starts and
unmounts every mount it made when the run ends, however it ends; ``fill`` writes a filler file
until the disk says ENOSPC and ``free`` removes it; ``lose`` deletes a replica's state.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path

DISK_SIZE = "64m"  # tmpfs size per replica: ample for a long run's log, quick to fill
FILLER = "filler"
_CHUNK = bytes(1 << 20)


class SmallDisks:
    """Mounts made for one run; a context manager that unmounts them all on exit."""

    def __init__(self) -> None:
        self.mounted: list[Path] = []

    def mount(self, directories: Iterable[Path], size: str = DISK_SIZE) -> str | None:
        """Mount a tmpfs of ``size`` on each directory; on failure unmount the ones made and
        return why (None when all are mounted)."""
        if os.geteuid() != 0:
            return "mounting a small disk per replica needs root"
        for directory in directories:
            command = ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(directory)]
            try:
                directory.mkdir(parents=True, exist_ok=True)
                subprocess.run(command, check=True, capture_output=True, text=True, timeout=10)
            except (OSError, subprocess.SubprocessError) as exc:
                self.unmount()
                detail = getattr(exc, "stderr", None) or str(exc)
                return f"cannot mount a tmpfs on {directory}: {detail.strip()}"
            self.mounted.append(directory)
        return None

    def unmount(self) -> None:
        """Detach every mount made here (lazily, so a file still open cannot keep one)."""
        failed = []
        while self.mounted:
            directory = self.mounted.pop()
            done = subprocess.run(
                ["umount", "--lazy", str(directory)], capture_output=True, text=True, timeout=10
            )
            if done.returncode != 0:
                failed.append(f"{directory}: {done.stderr.strip()}")
        if failed:
            raise OSError(f"cannot unmount {'; '.join(failed)}")

    def __enter__(self) -> SmallDisks:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.unmount()


def fill(directory: Path) -> int:
    """Write a filler file into ``directory`` until its disk is full; the bytes written."""
    written = 0
    with (directory / FILLER).open("wb", buffering=0) as handle:
        while True:
            try:
                written += handle.write(_CHUNK) or 0
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                return written


def free(directory: Path) -> None:
    (directory / FILLER).unlink(missing_ok=True)


def lose(directory: Path) -> None:
    """Delete everything a replica keeps in ``directory``, and the directory itself unless it
    is a mount point (a mounted disk that lost its data stays mounted, blank)."""
    if not directory.exists():
        return
    for child in directory.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()
    if not directory.is_mount():
        directory.rmdir()
