"""Headless Chromium for the tests that look at a page the way a person's browser shows it.

Where no Chromium is on PATH it is installed with apt-get (as root); where that is impossible
the test is skipped with the reason.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.apt import can_install, install_packages

NAMES = ("chromium", "chromium-browser", "google-chrome")
# Root has no user namespaces for Chromium's sandbox here; the pages are the store's own.
FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars")


def _find() -> str | None:
    return next((path for name in NAMES if (path := shutil.which(name))), None)


def chromium() -> str:
    """The Chromium binary, installed if need be, or the test is skipped saying why."""
    found = _find()
    if found is None and can_install():
        said = install_packages("chromium")
        found = _find()
        if found is None:
            pytest.skip(f"Chromium is not installed and apt-get could not install it: {said}")
    if found is None:
        pytest.skip("Chromium is not installed (apt-get install chromium, as root)")
    return found


def dump_dom(url: str, run_for_ms: int) -> str:
    """The page's DOM after its scripts ran for ``run_for_ms`` of virtual time."""
    argv = [chromium(), *FLAGS, f"--virtual-time-budget={run_for_ms}", "--dump-dom", url]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=True).stdout


def screenshot(url: str, path: Path, size: tuple[int, int], run_for_ms: int) -> Path:
    """A PNG of the page at ``size`` after its scripts ran for ``run_for_ms``."""
    argv = [
        chromium(), *FLAGS, f"--virtual-time-budget={run_for_ms}",
        f"--window-size={size[0]},{size[1]}", f"--screenshot={path}", url,
    ]  # fmt: skip
    subprocess.run(argv, capture_output=True, text=True, timeout=60, check=True)
    return path
