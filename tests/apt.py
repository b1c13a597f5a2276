"""Installing a distribution package a test needs (as root, with apt-get)."""

from __future__ import annotations

import os
import shutil
import subprocess


def _apt_get(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    # A dpkg lock held elsewhere must not hang the suite: give up after ten minutes.
    return subprocess.run(["apt-get", *args], capture_output=True, text=True, env=env, timeout=600)


def can_install() -> bool:
    return os.geteuid() == 0 and shutil.which("apt-get") is not None


def install_packages(*packages: str) -> str:
    """Install ``packages``; what apt-get said if it could not (empty when it did)."""
    if _apt_get("install", "-y", *packages).returncode == 0:
        return ""
    _apt_get("update")  # the package lists may be missing or stale
    done = _apt_get("install", "-y", *packages)
    if done.returncode == 0:
        return ""
    return (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1]
